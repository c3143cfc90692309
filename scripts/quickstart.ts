// One command on a fresh clone (after `npm ci`): development certificates, a dev config, a running
// cu-thor-server, a demo job started with cu-thor and its output streamed back.
//   npm run quickstart            keep the server running until Ctrl-C
//   npm run quickstart -- --once  stop after the demo (CI)
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cgroup2Available } from '../shared/cgroup/index.ts';
import { createRunner, findBinary, type Runner, type Spawned } from '../shared/exec/index.ts';
import { ensureNsInit, nsInitPath } from '../shared/ns/index.ts';
import { ensurePageCache } from '../shared/native/pagecache.ts';
import { createLogger } from '../shared/log/index.ts';
import { generateCerts } from './generate-certs.ts';

const root = path.resolve(import.meta.dirname, '..');
const SERVER_MAIN = path.join(root, 'daemons', 'cu-thor-server', 'main.ts');
const CLI_MAIN = path.join(root, 'daemons', 'cu-thor', 'main.ts');

export interface QuickstartOptions {
  /** where certs, config, state and the server log go (default <repo>/.dev). */
  devDir: string;
  /** stop after the demo instead of waiting for Ctrl-C. */
  once: boolean;
  /** listen port; 0 = pick a free one. */
  port: number;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  runner: Runner;
  /** aborted on Ctrl-C. */
  signal: AbortSignal;
}

/** A port nobody listens on right now (the server binds it a moment later). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => {
        resolve(port);
      });
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => {
      resolve(false);
    });
  });
}

/** The dev config: everything under devDir, cgroups required only where they work. */
export function devConfig(devDir: string, port: number, cgroupRequire: boolean): string {
  const certs = path.join(devDir, 'certs', 'server');
  return `# written by npm run quickstart; see etc/hostplane/cu-thor-server.toml for every key
listen = "127.0.0.1:${port}"
state_dir = ${JSON.stringify(path.join(devDir, 'state'))}

[tls]
ca_file = ${JSON.stringify(path.join(certs, 'ca.crt'))}
cert_file = ${JSON.stringify(path.join(certs, 'server.crt'))}
key_file = ${JSON.stringify(path.join(certs, 'server.key'))}

[cgroup]
# ${cgroupRequire ? 'this host has usable cgroup v2 controllers' : 'no usable cgroup v2 controllers here: jobs run with namespaces only'}
require = ${cgroupRequire}
`;
}

function node(runner: Runner, args: string[], env: Record<string, string>): Spawned {
  return runner.spawn([process.execPath, '--import', 'tsx', ...args], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs the CLI, copying its stdout/stderr to ours; resolves to its exit code and stdout. */
async function cli(
  o: QuickstartOptions,
  env: Record<string, string>,
  args: string[],
  echo: boolean,
): Promise<{ code: number | null; stdout: string }> {
  const p = node(o.runner, [CLI_MAIN, ...args], env);
  let stdout = '';
  p.stdout?.on('data', (b: Buffer) => {
    stdout += b.toString();
    if (echo) o.out.write(b);
  });
  p.stderr?.on('data', (b: Buffer) => o.err.write(b));
  const { code } = await p.exited;
  return { code, stdout };
}

export async function quickstart(o: QuickstartOptions): Promise<number> {
  const say = (line: string): void => {
    o.out.write(`quickstart: ${line}\n`);
  };
  const certDir = path.join(o.devDir, 'certs');
  await mkdir(o.devDir, { recursive: true });
  if (existsSync(path.join(certDir, 'ca.crt'))) {
    say(`reusing development certificates in ${certDir}`);
  } else {
    say(`generating development certificates in ${certDir} (RSA 4096 CA: a few seconds)`);
    await generateCerts({ out: certDir });
  }
  // the daemon runs jobs under hostplane-nsinit; a checkout builds it from shared/ns/nsinit.c
  const nsinit = await ensureNsInit(o.runner);
  say(`job init: ${nsinit}`);
  // and the addon that keeps job output from filling the page cache
  await ensurePageCache(o.runner);
  const cg = await cgroup2Available();
  if (!cg.ok)
    say(`cgroup v2 not usable (${cg.reason ?? 'unknown'}): jobs run with namespaces only`);
  const port = o.port === 0 ? await freePort() : o.port;
  const configFile = path.join(o.devDir, 'cu-thor-server.toml');
  await writeFile(configFile, devConfig(o.devDir, port, cg.ok));
  say(`wrote ${configFile}`);

  const logFile = path.join(o.devDir, 'cu-thor-server.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  say(`starting cu-thor-server on 127.0.0.1:${port} (log: ${logFile})`);
  const server = node(o.runner, [SERVER_MAIN, '--config', configFile], {});
  server.stdout?.pipe(log);
  let serverErr = '';
  server.stderr?.on('data', (b: Buffer) => {
    serverErr += b.toString();
    log.write(b);
  });
  const state = { serverExited: false };
  void server.exited.then(() => (state.serverExited = true));
  const stopServer = async (): Promise<void> => {
    if (!state.serverExited) server.kill('SIGTERM');
    await server.exited;
    log.end();
  };

  try {
    const deadline = Date.now() + 60_000;
    while (!(await portOpen(port))) {
      if (state.serverExited) {
        o.err.write(`quickstart: cu-thor-server exited before listening:\n${serverErr}`);
        return 1;
      }
      if (Date.now() > deadline) {
        o.err.write('quickstart: cu-thor-server did not listen within 60 s\n');
        return 1;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const client1 = path.join(certDir, 'client1');
    const env = { CUTHOR_SERVER: `localhost:${port}`, CUTHOR_CLIENT_CRED_LOCATION: client1 };
    const demo = [
      'start',
      '--command',
      'sh',
      '--',
      '-c',
      'echo "hello from pid $$ in its own namespaces"; ls /proc | grep -c "^[0-9]" | sed "s/^/processes visible: /"; ip -o link 2>/dev/null | cut -d: -f2 | tr -d " " | sed "s/^/network link: /"; echo "this line goes to stderr" >&2; for i in 1 2 3; do echo "tick $i"; sleep 0.2; done',
    ];
    say('cu-thor start --command sh -- -c "<demo script>"');
    const started = await cli(o, env, demo, false);
    const id = started.stdout.trim();
    if (started.code !== 0 || id === '') {
      o.err.write('quickstart: cu-thor start failed\n');
      return 1;
    }
    say(`execution id: ${id}`);
    say(`cu-thor output --id ${id}`);
    const output = await cli(o, env, ['output', '--id', id], true);
    if (output.code !== 0) {
      o.err.write('quickstart: cu-thor output failed\n');
      return 1;
    }
    const status = await cli(o, env, ['status', '--id', id], true);
    if (status.code !== 0) return 1;
    o.out.write(`
Next, in another terminal:
  export CUTHOR_SERVER=localhost:${port}
  export CUTHOR_CLIENT_CRED_LOCATION=${client1}
  alias cu-thor='npx tsx ${path.relative(process.cwd(), CLI_MAIN) || CLI_MAIN}'
  cu-thor start --command head -- -n10 /etc/os-release
  cu-thor list
  cu-thor status --id ${id} --json
  cu-thor output --id <ID>
  cu-thor stop --id <ID>
  (client2's certificates are in ${path.join(certDir, 'client2')}: it sees none of client1's jobs)
`);
    if (o.once) {
      say('--once: stopping the server');
      return 0;
    }
    say('server running; Ctrl-C stops it');
    await new Promise<void>((resolve) => {
      if (o.signal.aborted) resolve();
      o.signal.addEventListener('abort', () => {
        resolve();
      });
      void server.exited.then(() => {
        resolve();
      });
    });
    return 0;
  } finally {
    await stopServer();
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      once: { type: 'boolean' },
      port: { type: 'string' },
      'dev-dir': { type: 'string' },
    },
  });
  const interrupted = new AbortController();
  process.once('SIGINT', () => {
    interrupted.abort();
  });
  const log = createLogger({ name: 'quickstart', level: 'warn' });
  return quickstart({
    devDir: path.resolve(values['dev-dir'] ?? path.join(root, '.dev')),
    once: values.once === true,
    port: values.port === undefined ? 0 : Number(values.port),
    out: process.stdout,
    err: process.stderr,
    runner: createRunner({
      log,
      allow: [process.execPath, nsInitPath(), await findBinary('gcc').catch(() => '/usr/bin/gcc')],
    }),
    signal: interrupted.signal,
  });
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  process.exitCode = await main();
}
