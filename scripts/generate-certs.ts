// Development/test PKI for cu-thor: a root CA (RSA 4096), a server certificate and two client
// certificates (RSA 2048), laid out the way cu-thor-server's [tls] and cu-thor's creds dir want.
//   npx tsx scripts/generate-certs.ts --out DIR [--server-name NAME]... [--force]
// DIR/ca.crt DIR/ca.key
// DIR/server/{ca.crt,server.crt,server.key}   SANs: localhost, 127.0.0.1, ::1, every NAME
// DIR/client1/{ca.crt,client.crt,client.key}  CN client1 (and the same for client2)
import { randomBytes } from 'node:crypto';
import { access, mkdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import forge from 'node-forge';

export const CLIENT_NAMES = ['client1', 'client2'] as const;

export interface GenerateOptions {
  out: string;
  /** extra DNS names or IP addresses of the server certificate. */
  serverNames?: readonly string[];
  /** validity in days (default 825, the longest most TLS clients accept for a leaf). */
  days?: number;
  /** RSA sizes; tests may use smaller CA keys to stay fast. */
  caBits?: number;
  leafBits?: number;
}

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

async function put(file: string, content: string, mode: number): Promise<void> {
  await writeFile(file, content, { mode });
}

/** Writes the whole layout under `opts.out`; returns the files written. */
export async function generateCerts(opts: GenerateOptions): Promise<string[]> {
  const days = opts.days ?? 825;
  const leafBits = opts.leafBits ?? 2048;
  const names = [...new Set(['localhost', '127.0.0.1', '::1', ...(opts.serverNames ?? [])])];
  const out = path.resolve(opts.out);
  const ca = createRootCa(opts.caBits ?? 4096, days * 2);
  const server = issueLeaf(
    ca,
    names.find((n) => n !== 'localhost' && isIP(n) === 0) ?? 'localhost',
    { server: names },
    leafBits,
    days,
  );
  const written: string[] = [];
  const w = async (rel: string, content: string, mode: number): Promise<void> => {
    const file = path.join(out, rel);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    await put(file, content, mode);
    written.push(file);
  };
  await w('ca.crt', ca.certPem, 0o644);
  await w('ca.key', ca.keyPem, 0o600);
  await w('server/ca.crt', ca.certPem, 0o644);
  await w('server/server.crt', server.certPem, 0o644);
  await w('server/server.key', server.keyPem, 0o600);
  for (const cn of CLIENT_NAMES) {
    const c = issueLeaf(ca, cn, 'client', leafBits, days);
    await w(`${cn}/ca.crt`, ca.certPem, 0o644);
    await w(`${cn}/client.crt`, c.certPem, 0o644);
    await w(`${cn}/client.key`, c.keyPem, 0o600);
  }
  return written;
}

const USAGE = `Usage: generate-certs --out DIR [--server-name NAME]... [--days N] [--force]

Writes a development CA (DIR/ca.crt, DIR/ca.key), a server certificate (DIR/server/) for
localhost, 127.0.0.1, ::1 and every NAME, and client certificates with CN client1 and client2
(DIR/client1/, DIR/client2/). Refuses to overwrite an existing DIR/ca.key without --force.
`;

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        'server-name': { type: 'string', multiple: true },
        days: { type: 'string' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`generate-certs: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.out === undefined) {
    process.stderr.write(`generate-certs: --out DIR is required\n${USAGE}`);
    return 2;
  }
  const days = values.days === undefined ? undefined : Number(values.days);
  if (days !== undefined && !(Number.isInteger(days) && days > 0)) {
    process.stderr.write(
      `generate-certs: --days '${values.days ?? ''}' is not a positive number\n`,
    );
    return 2;
  }
  const caKey = path.join(values.out, 'ca.key');
  const exists = await access(caKey).then(
    () => true,
    () => false,
  );
  if (exists && values.force !== true) {
    process.stderr.write(`generate-certs: ${caKey} exists; use --force to replace the whole set\n`);
    return 1;
  }
  try {
    const files = await generateCerts({
      out: values.out,
      serverNames: values['server-name'] ?? [],
      ...(days === undefined ? {} : { days }),
    });
    for (const f of files) process.stdout.write(`${f}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(
      `generate-certs: writing certificates to ${values.out}: ${(err as Error).message}\n`,
    );
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  process.exitCode = await main(process.argv.slice(2));
}
