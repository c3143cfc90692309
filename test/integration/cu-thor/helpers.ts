// A real cu-thor-server (in-process run(), real executor, real certificates) for integration
// tests, and the CLI run against it with captured output.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { parseConfig } from '../../../shared/config/index.ts';
import { createRunner, findBinary, type Runner } from '../../../shared/exec/index.ts';
import { createMemoryLogger, type Logger } from '../../../shared/log/index.ts';
import { ensureNsInit, nsInitPath } from '../../../shared/ns/index.ts';
import { configSchema, type Config } from '../../../daemons/cu-thor-server/config.ts';
import { run } from '../../../daemons/cu-thor-server/server.ts';
import { runCli } from '../../../daemons/cu-thor/run.ts';
import { generateCerts } from '../../../scripts/generate-certs.ts';

export class Capture extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  text(): string {
    return this.bytes().toString();
  }
}

export interface Fixture {
  dir: string;
  certs: string;
  runner: Runner;
  nsinit: string;
  unshare: string;
}

/** Certificates (generate-certs with its real key sizes) and the namespace helpers. */
export async function fixture(): Promise<Fixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cu-thor-it-'));
  const certs = path.join(dir, 'certs');
  await generateCerts({ out: certs });
  const { log } = createMemoryLogger('runner');
  const unshare = await findBinary('unshare');
  // gcc builds the checkout's init on first use; the executor runs unshare and the init
  const runner = createRunner({ log, allow: [unshare, await findBinary('gcc'), nsInitPath()] });
  const nsinit = await ensureNsInit(runner);
  return { dir, certs, runner, nsinit, unshare };
}

export async function cleanup(f: Fixture): Promise<void> {
  await rm(f.dir, { recursive: true, force: true });
}

export interface RunningServer {
  address: string;
  status: string;
  stop(): Promise<void>;
  log: Logger;
  records: Record<string, unknown>[];
  /** SIGHUP with the same config. */
  reload(): Promise<void>;
  /** SIGHUP with a config whose [tls] names other files. */
  reloadWith(tls: Config['tls']): Promise<void>;
}

/** Starts run() with a config written as TOML (listen/state_dir/tls/cgroup filled in). */
export async function startServer(
  f: Fixture,
  extraToml = '',
  stateName = 'state',
): Promise<RunningServer> {
  const s = path.join(f.certs, 'server');
  const toml = `listen = "127.0.0.1:0"
state_dir = ${JSON.stringify(path.join(f.dir, stateName))}
${extraToml}
[tls]
ca_file = ${JSON.stringify(path.join(s, 'ca.crt'))}
cert_file = ${JSON.stringify(path.join(s, 'server.crt'))}
key_file = ${JSON.stringify(path.join(s, 'server.key'))}
[cgroup]
require = false
`;
  const config = parseConfig(toml, 'test.toml', configSchema);
  const { log, records } = createMemoryLogger('cu-thor-server');
  const abort = new AbortController();
  let address = '';
  let reload: (next: typeof config) => Promise<void> = () => Promise.resolve();
  let markReady: (status: string) => void = () => undefined;
  const ready = new Promise<string>((resolve) => (markReady = resolve));
  const done = run(
    {
      config,
      log,
      runner: f.runner,
      nsinit: f.nsinit,
      unshare: f.unshare,
      ready: (status) => {
        markReady(status);
      },
      onReload: (fn) => {
        reload = fn;
      },
      onListening: (a) => {
        address = a;
      },
    },
    abort.signal,
  );
  const status = await Promise.race([
    ready,
    done.then(() => Promise.reject(new Error('run() ended before READY'))),
  ]);
  return {
    address: address.replace('127.0.0.1', 'localhost'),
    status,
    log,
    records,
    reload: () => reload(config),
    reloadWith: (tls) => reload({ ...config, tls }),
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

/** Runs the CLI in-process as `client`, against `server`. */
export async function cli(
  f: Fixture,
  server: { address: string },
  client: 'client1' | 'client2',
  argv: string[],
): Promise<{ code: number; out: string; err: string; outBytes: Buffer }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runCli(argv, {
    stdout,
    stderr,
    env: { CUTHOR_SERVER: server.address, CUTHOR_CLIENT_CRED_LOCATION: path.join(f.certs, client) },
  });
  return { code, out: stdout.text(), err: stderr.text(), outBytes: stdout.bytes() };
}
