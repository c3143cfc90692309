// Development/test PKI for cu-thor: a root CA (RSA 4096), a server certificate and two client
// certificates (RSA 2048), laid out the way cu-thor-server's [tls] and cu-thor's creds dir want.
//   npx tsx scripts/generate-certs.ts --out DIR [--server-name NAME]... [--force]
// DIR/ca.crt DIR/ca.key
// DIR/server/{ca.crt,server.crt,server.key}   SANs: localhost, 127.0.0.1, ::1, every NAME
// DIR/client1/{ca.crt,client.crt,client.key}  CN client1 (and the same for client2)
import { access } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createCA, issueCertificate, writeCredentials } from '../shared/pki/index.ts';

export const CLIENT_NAMES = ['client1', 'client2'] as const;

/** Subject O of every certificate of the set. */
const ORGANIZATION = 'hostplane dev';

export interface GenerateOptions {
  out: string;
  /** extra DNS names or IP addresses of the server certificate. */
  serverNames?: readonly string[];
  /** validity in days of the leaves (default 825, the longest most TLS clients accept); the CA
   * lives twice as long. */
  days?: number;
  /** RSA sizes; tests may use smaller CA keys to stay fast. */
  caBits?: number;
  leafBits?: number;
}

/** Writes the whole layout under `opts.out` (keys 0600, each file atomically); returns the files. */
export async function generateCerts(opts: GenerateOptions): Promise<string[]> {
  const days = opts.days ?? 825;
  const bits = opts.leafBits ?? 2048;
  const names = [...new Set(['localhost', '127.0.0.1', '::1', ...(opts.serverNames ?? [])])];
  const out = path.resolve(opts.out);
  const organizations = [ORGANIZATION];
  const ca = await createCA({
    commonName: 'hostplane dev CA',
    organizations,
    bits: opts.caBits ?? 4096,
    days: days * 2,
  });
  // the leaves' keys are generated natively and in parallel
  const [server, ...clients] = await Promise.all([
    issueCertificate({
      ca,
      commonName: names.find((n) => n !== 'localhost' && isIP(n) === 0) ?? 'localhost',
      organizations,
      dnsNames: names.filter((n) => isIP(n) === 0),
      ipAddresses: names.filter((n) => isIP(n) !== 0),
      usage: 'server',
      bits,
      days,
    }),
    ...CLIENT_NAMES.map((cn) =>
      issueCertificate({ ca, commonName: cn, organizations, usage: 'client', bits, days }),
    ),
  ]);
  const written = [
    ...(await writeCredentials(out, { 'ca.crt': ca.certPem, 'ca.key': ca.keyPem })),
    ...(await writeCredentials(path.join(out, 'server'), {
      'ca.crt': ca.certPem,
      'server.crt': server.certPem,
      'server.key': server.keyPem,
    })),
  ];
  for (const [i, cn] of CLIENT_NAMES.entries()) {
    const c = clients[i]!;
    written.push(
      ...(await writeCredentials(path.join(out, cn), {
        'ca.crt': ca.certPem,
        'client.crt': c.certPem,
        'client.key': c.keyPem,
      })),
    );
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
