// Test certificates for the exec chain, from shared/pki: a CA (2048-bit, for speed), server
// leaves with SANs, client leaves with CN = user and O = groups, and their files for the TOML.
import { isIP } from 'node:net';
import path from 'node:path';
import { createCA, issueCertificate, writeCredentials } from '../../../shared/pki/index.ts';

export interface Pem {
  cert: string;
  key: string;
}

export interface LeafOptions {
  groups?: readonly string[];
  /** SANs (IP addresses or DNS names); a leaf with SANs serves and is a client too */
  server?: readonly string[];
}

export interface TestCa extends Pem {
  issue(cn: string, opts?: LeafOptions): Promise<Pem>;
  /** writes ca.pem and NAME.{crt,key} into `dir`; returns their paths */
  write(
    dir: string,
    name: string,
    leaf: Pem,
  ): Promise<{ ca_file: string; cert_file: string; key_file: string }>;
}

export async function createTestCa(name = 'exec test CA'): Promise<TestCa> {
  const ca = await createCA({ commonName: name, bits: 2048, days: 1 });
  return {
    cert: ca.certPem,
    key: ca.keyPem,
    async issue(cn, opts = {}) {
      const sans = opts.server ?? [];
      const leaf = await issueCertificate({
        ca,
        commonName: cn,
        organizations: opts.groups ?? [],
        ipAddresses: sans.filter((n) => isIP(n) !== 0),
        dnsNames: sans.filter((n) => isIP(n) === 0),
        usage: opts.server === undefined ? 'client' : 'both',
        days: 1,
      });
      return { cert: leaf.certPem, key: leaf.keyPem };
    },
    async write(dir, leafName, leaf) {
      await writeCredentials(dir, {
        'ca.pem': ca.certPem,
        [`${leafName}.crt`]: leaf.cert,
        [`${leafName}.key`]: leaf.key,
      });
      return {
        ca_file: path.join(dir, 'ca.pem'),
        cert_file: path.join(dir, `${leafName}.crt`),
        key_file: path.join(dir, `${leafName}.key`),
      };
    },
  };
}
