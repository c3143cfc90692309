// Test certificates for the exec chain (shared/pki was not there yet when these tests were
// written): a CA, server leaves with SANs, client leaves with CN = user and O = groups.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import forge from 'node-forge';

export interface Pem {
  cert: string;
  key: string;
}

export interface TestCa extends Pem {
  issue(cn: string, opts?: { groups?: readonly string[]; server?: readonly string[] }): Pem;
  /** writes ca.pem and NAME.{crt,key} for each leaf into `dir`; returns their paths */
  write(
    dir: string,
    name: string,
    leaf: Pem,
  ): Promise<{ ca_file: string; cert_file: string; key_file: string }>;
}

function cert(
  cn: string,
  groups: readonly string[],
  publicKey: forge.pki.PublicKey,
): forge.pki.Certificate {
  const c = forge.pki.createCertificate();
  c.publicKey = publicKey;
  c.serialNumber = '01' + randomBytes(16).toString('hex');
  c.validity.notBefore = new Date(Date.now() - 60_000);
  c.validity.notAfter = new Date(Date.now() + 86_400_000);
  c.setSubject([
    ...groups.map((g) => ({ name: 'organizationName', value: g })),
    { name: 'commonName', value: cn },
  ]);
  return c;
}

export function createTestCa(name = 'exec test CA'): TestCa {
  const caKey = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const ca = cert(name, [], caKey.publicKey);
  ca.setIssuer(ca.subject.attributes);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKey.privateKey, forge.md.sha256.create());
  const caPem = forge.pki.certificateToPem(ca);
  return {
    cert: caPem,
    key: forge.pki.privateKeyToPem(caKey.privateKey),
    issue(cn, opts = {}) {
      const key = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
      const c = cert(cn, opts.groups ?? [], key.publicKey);
      c.setIssuer(ca.subject.attributes);
      const ext: object[] = [
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      ];
      if (opts.server !== undefined) {
        ext.push({ name: 'extKeyUsage', serverAuth: true, clientAuth: true });
        ext.push({
          name: 'subjectAltName',
          altNames: opts.server.map((n) =>
            isIP(n) === 0 ? { type: 2, value: n } : { type: 7, ip: n },
          ),
        });
      } else {
        ext.push({ name: 'extKeyUsage', clientAuth: true });
      }
      c.setExtensions(ext);
      c.sign(caKey.privateKey, forge.md.sha256.create());
      return {
        cert: forge.pki.certificateToPem(c),
        key: forge.pki.privateKeyToPem(key.privateKey),
      };
    },
    async write(dir, leafName, leaf) {
      const files = {
        ca_file: path.join(dir, 'ca.pem'),
        cert_file: path.join(dir, `${leafName}.crt`),
        key_file: path.join(dir, `${leafName}.key`),
      };
      await writeFile(files.ca_file, caPem);
      await writeFile(files.cert_file, leaf.cert);
      await writeFile(files.key_file, leaf.key, { mode: 0o600 });
      return files;
    },
  };
}
