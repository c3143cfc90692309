// Figures of the job executor (prints them; asserts nothing):
// - start latency: ExecuteCommand until the command's first output byte reaches the client, vs a
//   bare `unshare --pid --mount --net --fork --mount-proc` of the same command until its first
//   stdout byte;
// - output throughput to 1 reader and to 100 concurrent readers while a job prints BYTES;
// - the server's peak RSS (VmHWM) over the whole run.
//   npx tsx test/bench/jobexec.ts [--bytes 1G] [--readers-bytes 100M] [--runs 20]
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseByteSize } from '../../shared/config/index.ts';
import { createRunner, findBinary } from '../../shared/exec/index.ts';
import { silentLogger } from '../../shared/log/index.ts';
import { ensureNsInit, nsInitPath } from '../../shared/ns/index.ts';
import {
  channelCredentials,
  createJobClient,
  readCredentials,
  type JobClient,
} from '../../daemons/cu-thor/client.ts';
import { generateCerts } from '../../scripts/generate-certs.ts';

const root = path.resolve(import.meta.dirname, '../..');
const { values } = parseArgs({
  options: {
    bytes: { type: 'string', default: '1G' },
    'readers-bytes': { type: 'string', default: '100M' },
    readers: { type: 'string', default: '100' },
    runs: { type: 'string', default: '20' },
  },
});
const BYTES = parseByteSize(values.bytes) ?? 1024 ** 3;
const READERS_BYTES = parseByteSize(values['readers-bytes']) ?? 100 * 1024 ** 2;
const READERS = Number(values.readers);
const RUNS = Number(values.runs);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};
const p90 = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length * 0.9)] ?? NaN;
};
const mb = (bytes: number, ms: number): string => (bytes / 1e6 / (ms / 1000)).toFixed(0);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => {
        resolve(port);
      });
    });
  });
}

async function firstChunk(client: JobClient, id: string): Promise<void> {
  for await (const _ of client.output(id)) return;
}

/** Reads the whole output of `id`; resolves to the bytes received. */
async function drain(client: JobClient, id: string): Promise<number> {
  let n = 0;
  for await (const c of client.output(id)) n += c.data?.data.length ?? 0;
  return n;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'jobexec-bench-'));
  const log = silentLogger();
  const unshare = await findBinary('unshare');
  const runner = createRunner({
    log,
    allow: [process.execPath, unshare, nsInitPath(), await findBinary('gcc')],
  });
  await ensureNsInit(runner);
  const certs = path.join(dir, 'certs');
  await generateCerts({ out: certs });
  const port = await freePort();
  const config = path.join(dir, 'server.toml');
  await writeFile(
    config,
    `listen = "127.0.0.1:${port}"
state_dir = "${dir}/state"
max_output_bytes = ${BYTES + 1024 ** 2}
max_concurrent = 256
[tls]
ca_file = "${certs}/server/ca.crt"
cert_file = "${certs}/server/server.crt"
key_file = "${certs}/server/server.key"
[cgroup]
require = false
`,
  );
  const server = runner.spawn(
    [
      process.execPath,
      '--import',
      'tsx',
      path.join(root, 'daemons/cu-thor-server/main.ts'),
      '--config',
      config,
    ],
    { cwd: root, env: { HOSTPLANE_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  server.stderr?.resume();
  try {
    for (let i = 0; ; i++) {
      const up = await new Promise<boolean>((resolve) => {
        const c = net.connect(port, '127.0.0.1', () => {
          c.destroy();
          resolve(true);
        });
        c.on('error', () => {
          resolve(false);
        });
      });
      if (up) break;
      if (i > 600) throw new Error('server did not listen');
      await new Promise((r) => setTimeout(r, 100));
    }
    const client = createJobClient(
      `localhost:${port}`,
      channelCredentials(await readCredentials(path.join(certs, 'client1'))),
    );

    // --- start latency
    const viaRpc: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < RUNS + 2; i++) {
      const t0 = performance.now();
      const e = await client.execute({ command: '/bin/echo', args: ['hi'] });
      await firstChunk(client, e.id);
      if (i >= 2) viaRpc.push(performance.now() - t0); // first runs warm up JIT and channel
      const t1 = performance.now();
      const p = runner.spawn(
        [unshare, '--pid', '--mount', '--net', '--fork', '--mount-proc', '/bin/echo', 'hi'],
        { stdio: ['ignore', 'pipe', 'ignore'] },
      );
      await new Promise((r) => p.stdout?.once('data', r));
      if (i >= 2) bare.push(performance.now() - t1);
      await p.exited;
    }
    const ratio = median(viaRpc) / median(bare);
    console.log(
      `start latency: rpc median ${median(viaRpc).toFixed(1)} ms (p90 ${p90(viaRpc).toFixed(1)}), ` +
        `bare unshare median ${median(bare).toFixed(1)} ms (p90 ${p90(bare).toFixed(1)}); ` +
        `ratio ${ratio.toFixed(2)}, target ≤ 1.5x bare + 2 ms = ${(1.5 * median(bare) + 2).toFixed(1)} ms`,
    );

    const hwm = async (): Promise<string> => {
      const st = await readFile(`/proc/${server.pid}/status`, 'utf8');
      const kb = Number(/VmHWM:\s+(\d+) kB/.exec(st)?.[1]);
      const rss = Number(/VmRSS:\s+(\d+) kB/.exec(st)?.[1]);
      return `server RSS now ${(rss / 1024).toFixed(0)} MB, peak so far ${(kb / 1024).toFixed(0)} MB`;
    };
    console.log(`  (${await hwm()})`);

    // --- one reader, following a job that prints BYTES
    {
      const e = await client.execute({ command: 'head', args: ['-c', String(BYTES), '/dev/zero'] });
      const t0 = performance.now();
      const n = await drain(client, e.id);
      const ms = performance.now() - t0;
      console.log(
        `1 reader: ${(n / 1e6).toFixed(0)} MB in ${(ms / 1000).toFixed(2)} s = ${mb(n, ms)} MB/s`,
      );
      console.log(`  (${await hwm()})`);
    }

    // --- READERS readers at once on one job printing READERS_BYTES, over a few channels
    {
      const creds = await readCredentials(path.join(certs, 'client1'));
      const clients = Array.from({ length: 4 }, () =>
        createJobClient(`localhost:${port}`, channelCredentials(creds)),
      );
      const e = await client.execute({
        command: 'head',
        args: ['-c', String(READERS_BYTES), '/dev/zero'],
      });
      const t0 = performance.now();
      const counts = await Promise.all(
        Array.from({ length: READERS }, (_, i) => drain(clients[i % clients.length]!, e.id)),
      );
      const ms = performance.now() - t0;
      const total = counts.reduce((a, b) => a + b, 0);
      const identical = counts.every((c) => c === counts[0]);
      console.log(
        `${READERS} readers: each ${((counts[0] ?? 0) / 1e6).toFixed(0)} MB (all equal: ${identical}), ` +
          `${(total / 1e6).toFixed(0)} MB total in ${(ms / 1000).toFixed(2)} s = ${mb(total, ms)} MB/s aggregate, ` +
          `${mb(counts[0] ?? 0, ms)} MB/s per reader`,
      );
      for (const c of clients) c.close();
    }
    client.close();

    const status = await readFile(`/proc/${server.pid}/status`, 'utf8');
    const peak = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    console.log(
      `server peak RSS (VmHWM): ${(Number(peak) / 1024).toFixed(0)} MB (target ≤ 150 MB)`,
    );
  } finally {
    server.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
