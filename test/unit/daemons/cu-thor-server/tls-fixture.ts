// Throwaway certificates for in-process gRPC tests (keys from node:crypto, signed with forge).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface Issued {
  cert: string;
  key: string;
}

function keyPair(): { key: string; forgeKey: forge.pki.rsa.PrivateKey; pub: forge.pki.PublicKey } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(key);
  return { key, forgeKey, pub: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e) };
}

function certificate(
  cn: string,
  pub: forge.pki.PublicKey,
  issuer: { cn: string; key: forge.pki.rsa.PrivateKey },
  extensions: object[],
): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = '01' + randomBytes(8).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  cert.setSubject([{ name: 'commonName', value: cn }]);
  cert.setIssuer([{ name: 'commonName', value: issuer.cn }]);
  cert.setExtensions(extensions);
  cert.sign(issuer.key, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** A CA with a server certificate (localhost, 127.0.0.1) and client certificates per CN. */
export function makePki(clients: string[]): {
  ca: string;
  server: Issued;
  clients: Record<string, Issued>;
} {
  const caKeys = keyPair();
  const ca = certificate('test ca', caKeys.pub, { cn: 'test ca', key: caKeys.forgeKey }, [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ]);
  const issuer = { cn: 'test ca', key: caKeys.forgeKey };
  const s = keyPair();
  const server = {
    key: s.key,
    cert: certificate('localhost', s.pub, issuer, [
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ]),
  };
  const out: Record<string, Issued> = {};
  for (const cn of clients) {
    const c = keyPair();
    out[cn] = {
      key: c.key,
      cert: certificate(cn, c.pub, issuer, [{ name: 'extKeyUsage', clientAuth: true }]),
    };
  }
  return { ca, server, clients: out };
}
