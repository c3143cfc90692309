// DEPRECATED: synchronous forge helpers kept only because test/integration/webterminal/helpers.ts
// still imports createRootCa/issueLeaf from scripts/generate-certs.ts. New code uses shared/pki
// (createCA, issueCertificate). Delete this file and the re-export in generate-certs.ts once that
// helper has moved to shared/pki.
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

interface KeyPair {
  privateKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
}

function keyPair(bits: number): KeyPair {
  // forge hands this to node's native generateKeyPairSync when it can (seconds, not minutes).
  return forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 });
}

function newCertificate(
  subjectCn: string,
  publicKey: forge.pki.rsa.PublicKey,
  days: number,
): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // positive (leading 0x01), 128 bits of randomness
  cert.serialNumber = '01' + randomBytes(16).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 5 * 60_000);
  cert.validity.notAfter = new Date(Date.now() + days * 86_400_000);
  cert.setSubject([
    { name: 'organizationName', value: 'hostplane dev' },
    { name: 'commonName', value: subjectCn },
  ]);
  return cert;
}

export interface Issued {
  certPem: string;
  keyPem: string;
}

/** A self-signed root CA. */
export function createRootCa(
  bits: number,
  days: number,
): Issued & { key: KeyPair; cert: forge.pki.Certificate } {
  const key = keyPair(bits);
  const cert = newCertificate('hostplane dev CA', key.publicKey, days);
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key.privateKey, forge.md.sha256.create());
  return {
    key,
    cert,
    certPem: forge.pki.certificateToPem(cert),
    keyPem: forge.pki.privateKeyToPem(key.privateKey),
  };
}

/** A leaf certificate signed by `ca`: a server one with SANs, or a client one. */
export function issueLeaf(
  ca: { key: KeyPair; cert: forge.pki.Certificate },
  cn: string,
  kind: { server: readonly string[] } | 'client',
  bits: number,
  days: number,
): Issued {
  const key = keyPair(bits);
  const cert = newCertificate(cn, key.publicKey, days);
  cert.setIssuer(ca.cert.subject.attributes);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    {
      name: 'authorityKeyIdentifier',
      keyIdentifier: ca.cert.generateSubjectKeyIdentifier().getBytes(),
    },
  ];
  if (kind === 'client') {
    extensions.push({ name: 'extKeyUsage', clientAuth: true });
  } else {
    extensions.push({ name: 'extKeyUsage', serverAuth: true });
    extensions.push({
      name: 'subjectAltName',
      altNames: kind.server.map((n) =>
        isIP(n) === 0 ? { type: 2, value: n } : { type: 7, ip: n },
      ),
    });
  }
  cert.setExtensions(extensions);
  cert.sign(ca.key.privateKey, forge.md.sha256.create());
  return {
    certPem: forge.pki.certificateToPem(cert),
    keyPem: forge.pki.privateKeyToPem(key.privateKey),
  };
}
