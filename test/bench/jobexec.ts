// Figures of the job executor (prints them; asserts nothing). The server runs as the bundle
// (`npm run build` → dist/cu-thor-server/main.mjs) unless --tsx says to run the sources.
// - start latency: ExecuteCommand until the command's first output byte reaches the client, vs a
//   bare `unshare --pid --mount --net --fork --mount-proc` of the same command until its first
//   stdout byte;
// - output throughput to 1 reader (in this process, and the bundled `cu-thor output` CLI into a
//   pipe) and to N concurrent readers while a job prints BYTES;
// - the server's peak RSS (VmHWM) per phase (reset between phases through clear_refs).
// The machine is shared: every phase runs --repeat times and the load average is printed.
//   npx tsx test/bench/jobexec.ts [--bytes 1G] [--readers 100] [--readers-bytes 100M]
//                                 [--runs 20] [--repeat 3] [--tsx] [--skip latency|one|finished|cli|many]...
//                                 [--server-arg NODE_OPTION]... [--plain-node]
// The server gets the node options its package gives it (node_options in
// packaging/deb/packages/hostplane-cu-thor-server.toml) unless --plain-node says otherwise.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseByteSize } from '../../shared/config/index.ts';
import { createRunner, findBinary } from '../../shared/exec/index.ts';
import type { Spawned } from '../../shared/exec/types.ts';
import { silentLogger } from '../../shared/log/index.ts';
import { ensureNsInit, nsInitPath } from '../../shared/ns/index.ts';
import {
  channelCredentials,
  createJobClient,
  readCredentials,
  type JobClient,
} from '../../daemons/cu-thor/client.ts';
import type { Execution } from '../../shared/proto/jobexec.ts';
import { generateCerts } from '../../scripts/generate-certs.ts';
import { loadSpecs } from '../../scripts/package.ts';

const root = path.resolve(import.meta.dirname, '../..');
const { values } = parseArgs({
  options: {
    bytes: { type: 'string', default: '1G' },
    'readers-bytes': { type: 'string', default: '100M' },
    readers: { type: 'string', default: '100' },
    runs: { type: 'string', default: '20' },
    repeat: { type: 'string', default: '3' },
    tsx: { type: 'boolean', default: false },
    threads: { type: 'boolean', default: false },
    skip: { type: 'string', multiple: true, default: [] },
    // node options for the server, e.g. --server-arg=--cpu-prof --server-arg=--cpu-prof-dir=/tmp
    'server-arg': { type: 'string', multiple: true, default: [] },
    // without the node options of the server's package (packaging/deb/packages: node_options)
    'plain-node': { type: 'boolean', default: false },
  },
});
const BYTES = parseByteSize(values.bytes) ?? 1024 ** 3;
const READERS_BYTES = parseByteSize(values['readers-bytes']) ?? 100 * 1024 ** 2;
const READERS = Number(values.readers);
const RUNS = Number(values.runs);
const REPEAT = Number(values.repeat);
const SKIP = new Set(values.skip);
const SERVER_BUNDLE = path.join(root, 'dist/cu-thor-server/main.mjs');
const CLI_BUNDLE = path.join(root, 'dist/cu-thor/main.mjs');

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
const median = (xs: number[]): number => sorted(xs)[Math.floor(xs.length / 2)] ?? NaN;
const p90 = (xs: number[]): number => sorted(xs)[Math.floor(xs.length * 0.9)] ?? NaN;
const rate = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);
const range = (xs: number[], digits = 0): string =>
  xs.length === 0
    ? 'n/a'
    : xs.length === 1
      ? xs[0]!.toFixed(digits)
      : `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
const load = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

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

/** Peak and current RSS of `pid` in MB. */
async function memory(pid: number): Promise<{ peak: number; now: number }> {
  const st = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(st)?.[1]);
  return { peak: kb('VmHWM') / 1024, now: kb('VmRSS') / 1024 };
}

/** CPU seconds (user + system, all threads) `pid` has used so far; clock ticks are 1/100 s. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // fields after the command name, which is in parentheses and may contain spaces
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** CPU seconds per thread name of `pid` (for --threads). */
async function threadCpu(pid: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    if (stat === '') continue;
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
  }
  return out;
}

function threadDelta(a: Map<string, number>, b: Map<string, number>): string {
  return [...b]
    .map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const)
    .filter(([, v]) => v > 0.05)
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(', ');
}

/** CPU seconds this process has used so far. */
function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Starts a new peak-RSS window (writing 5 to clear_refs resets VmHWM, Linux ≥ 4.0). */
async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5');
}

/** How long an ended execution ran, from its metadata (to second/ms precision). */
function jobSeconds(e: Execution): number {
  const t = (ts: Execution['startedAt']): number =>
    ts === null ? NaN : Number(ts.seconds) + ts.nanos / 1e9;
  return t(e.endedAt) - t(e.startedAt);
}

interface Row {
  what: string;
  figure: string;
  target: string;
  ok: boolean | null;
}

async function main(): Promise<void> {
  if (!values.tsx && !existsSync(SERVER_BUNDLE)) {
    throw new Error(`${SERVER_BUNDLE} is missing: run npm run build (or pass --tsx)`);
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'jobexec-bench-'));
  const log = silentLogger();
  const unshare = await findBinary('unshare');
  const runner = createRunner({
    log,
    allow: [process.execPath, unshare, nsInitPath(), await findBinary('gcc')],
  });
  const nsinit = await ensureNsInit(runner);
  const certs = path.join(dir, 'certs');
  await generateCerts({ out: certs });
  const port = await freePort();
  const config = path.join(dir, 'server.toml');
  await writeFile(
    config,
    `listen = "127.0.0.1:${port}"
state_dir = "${dir}/state"
max_output_bytes = ${Math.max(BYTES, READERS_BYTES) + 1024 ** 2}
max_concurrent = 256
[tls]
ca_file = "${certs}/server/ca.crt"
cert_file = "${certs}/server/server.crt"
key_file = "${certs}/server/server.key"
[cgroup]
require = false
`,
  );
  const env = {
    HOSTPLANE_LOG_LEVEL: 'warn',
    HOSTPLANE_NSINIT: nsinit,
    HOSTPLANE_PAGECACHE: path.join(root, 'dist/native/pagecache.node'),
    HOSTPLANE_PROTO_DIR: path.join(root, 'proto'),
  };
  const entry = values.tsx
    ? ['--import', 'tsx', path.join(root, 'daemons/cu-thor-server/main.ts')]
    : [SERVER_BUNDLE];
  const packaged = values['plain-node']
    ? []
    : ((await loadSpecs()).find((s) => s.daemon === 'cu-thor-server')?.node_options ?? []);
  const nodeArgs = [...packaged, ...values['server-arg']];
  const server = runner.spawn([process.execPath, ...nodeArgs, ...entry, '--config', config], {
    cwd: root,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  server.stderr?.resume();
  const rows: Row[] = [];
  console.log(
    `jobexec bench: server ${values.tsx ? 'via tsx (sources)' : 'bundle ' + path.relative(root, SERVER_BUNDLE)}, ` +
      `node ${process.version} ${nodeArgs.join(' ')}, ${os.cpus().length} CPUs, load average ${load()}`,
  );
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
    const creds = await readCredentials(path.join(certs, 'client1'));
    const client = createJobClient(`localhost:${port}`, channelCredentials(creds));
    console.log(`  server idle: RSS ${(await memory(server.pid)).now.toFixed(0)} MB`);

    // --- start latency
    if (!SKIP.has('latency')) {
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
      const target = 1.5 * median(bare) + 2;
      console.log(
        `start latency: rpc median ${median(viaRpc).toFixed(1)} ms (p90 ${p90(viaRpc).toFixed(1)}), ` +
          `bare unshare median ${median(bare).toFixed(1)} ms (p90 ${p90(bare).toFixed(1)}), ` +
          `ratio ${(median(viaRpc) / median(bare)).toFixed(2)}  [load ${load()}]`,
      );
      rows.push({
        what: 'start latency (median)',
        figure: `${median(viaRpc).toFixed(1)} ms vs bare ${median(bare).toFixed(1)} ms`,
        target: `≤ 1.5× bare + 2 ms = ${target.toFixed(1)} ms`,
        ok: median(viaRpc) <= target,
      });
    }

    // --- one reader in this process, following a job that prints BYTES
    if (!SKIP.has('one')) {
      const rates: number[] = [];
      const peaks: number[] = [];
      for (let r = 0; r < REPEAT; r++) {
        await resetPeak(server.pid);
        const [s0, c0] = [await cpuSeconds(server.pid), ownCpuSeconds()];
        const th0 = await threadCpu(server.pid);
        const e = await client.execute({
          command: 'head',
          args: ['-c', String(BYTES), '/dev/zero'],
        });
        const t0 = performance.now();
        const n = await drain(client, e.id);
        const ms = performance.now() - t0;
        const gb = n / 1e9;
        const serverCpu = ((await cpuSeconds(server.pid)) - s0) / gb;
        const clientCpu = (ownCpuSeconds() - c0) / gb;
        const cpu = `cpu s/GB: server ${serverCpu.toFixed(2)}, client ${clientCpu.toFixed(2)}`;
        if (values.threads) {
          console.log(`  server threads, cpu s: ${threadDelta(th0, await threadCpu(server.pid))}`);
        }
        if (n !== BYTES) throw new Error(`1 reader got ${n} bytes of ${BYTES}`);
        const m = await memory(server.pid);
        rates.push(rate(n, ms));
        peaks.push(m.peak);
        const job = jobSeconds(await client.get(e.id));
        console.log(
          `1 reader: ${(n / 1e6).toFixed(0)} MB in ${(ms / 1000).toFixed(2)} s = ${rate(n, ms).toFixed(0)} MB/s ` +
            `(the job itself ran ${job.toFixed(2)} s; ${cpu}), server peak RSS ${m.peak.toFixed(0)} MB  [load ${load()}]`,
        );
      }
      rows.push({
        what: `1 reader, job printing ${(BYTES / 1e6).toFixed(0)} MB`,
        figure: `${range(rates)} MB/s`,
        target: '≥ 300 MB/s',
        ok: Math.max(...rates) >= 300,
      });
      rows.push({
        what: '  server peak RSS',
        figure: `${range(peaks)} MB`,
        target: '≤ 150 MB',
        ok: Math.max(...peaks) <= 150,
      });
    }

    // --- one reader of an output already on disk: delivery alone, without the job's ingest
    if (!SKIP.has('finished')) {
      const rates: number[] = [];
      for (let r = 0; r < REPEAT; r++) {
        const i0 = await cpuSeconds(server.pid);
        const e = await client.execute({
          command: 'head',
          args: ['-c', String(BYTES), '/dev/zero'],
        });
        let done: Execution;
        while ((done = await client.get(e.id)).status === 'EXECUTION_STATUS_RUNNING') {
          await new Promise((res) => setTimeout(res, 50));
        }
        const s0 = await cpuSeconds(server.pid);
        console.log(
          `  no reader: the job ran ${jobSeconds(done).toFixed(2)} s, server cpu ${((s0 - i0) / (BYTES / 1e9)).toFixed(2)} s/GB writing it`,
        );
        const t0 = performance.now();
        const n = await drain(client, e.id);
        const ms = performance.now() - t0;
        const serverCpu = ((await cpuSeconds(server.pid)) - s0) / (n / 1e9);
        rates.push(rate(n, ms));
        console.log(
          `1 reader of a finished job: ${(n / 1e6).toFixed(0)} MB in ${(ms / 1000).toFixed(2)} s = ` +
            `${rate(n, ms).toFixed(0)} MB/s (server cpu ${serverCpu.toFixed(2)} s/GB)  [load ${load()}]`,
        );
      }
      rows.push({
        what: '1 reader, output already on disk',
        figure: `${range(rates)} MB/s`,
        target: '',
        ok: null,
      });
    }

    // --- the bundled CLI, `cu-thor output` into a pipe this process drains
    if (!SKIP.has('cli') && existsSync(CLI_BUNDLE)) {
      const rates: number[] = [];
      for (let r = 0; r < REPEAT; r++) {
        const e = await client.execute({
          command: 'head',
          args: ['-c', String(BYTES), '/dev/zero'],
        });
        const t0 = performance.now();
        const cli: Spawned = runner.spawn([process.execPath, CLI_BUNDLE, 'output', '--id', e.id], {
          env: {
            ...env,
            CUTHOR_SERVER: `localhost:${port}`,
            CUTHOR_CLIENT_CRED_LOCATION: path.join(certs, 'client1'),
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let n = 0;
        cli.stdout?.on('data', (b: Buffer) => (n += b.length));
        cli.stderr?.resume();
        const exit = await cli.exited;
        const ms = performance.now() - t0;
        if (n !== BYTES)
          throw new Error(`cu-thor output gave ${n} bytes of ${BYTES} (${exit.code})`);
        rates.push(rate(n, ms));
        console.log(
          `cu-thor output (bundle) into a pipe: ${(n / 1e6).toFixed(0)} MB in ${(ms / 1000).toFixed(2)} s ` +
            `= ${rate(n, ms).toFixed(0)} MB/s (includes CLI start)  [load ${load()}]`,
        );
      }
      rows.push({
        what: '`cu-thor output` CLI into a pipe',
        figure: `${range(rates)} MB/s`,
        target: '(≥ 300 MB/s)',
        ok: null,
      });
    }

    // --- READERS readers at once on one job printing READERS_BYTES, over a few channels
    if (!SKIP.has('many')) {
      const clients = Array.from({ length: 4 }, () =>
        createJobClient(`localhost:${port}`, channelCredentials(creds)),
      );
      const aggregate: number[] = [];
      const peaks: number[] = [];
      for (let r = 0; r < REPEAT; r++) {
        await resetPeak(server.pid);
        const s0 = await cpuSeconds(server.pid);
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
        const complete = counts.every((c) => c === READERS_BYTES);
        const m = await memory(server.pid);
        aggregate.push(rate(total, ms));
        peaks.push(m.peak);
        console.log(
          `${READERS} readers: each ${(READERS_BYTES / 1e6).toFixed(0)} MB (all complete: ${complete}), ` +
            `${(total / 1e6).toFixed(0)} MB in ${(ms / 1000).toFixed(2)} s = ${rate(total, ms).toFixed(0)} MB/s ` +
            `aggregate (server cpu ${(((await cpuSeconds(server.pid)) - s0) / (total / 1e9)).toFixed(2)} s/GB sent), ` +
            `server peak RSS ${m.peak.toFixed(0)} MB  [load ${load()}]`,
        );
        if (!complete) throw new Error(`${READERS} readers: some got fewer bytes`);
      }
      for (const c of clients) c.close();
      rows.push({
        what: `${READERS} readers, job printing ${(READERS_BYTES / 1e6).toFixed(0)} MB`,
        figure: `${range(aggregate)} MB/s aggregate`,
        target: '',
        ok: null,
      });
      rows.push({
        what: '  server peak RSS',
        figure: `${range(peaks)} MB`,
        target: '≤ 150 MB',
        ok: Math.max(...peaks) <= 150,
      });
    }
    client.close();

    console.log(`\nsummary (${REPEAT} runs each; load average now ${load()}):`);
    const w = Math.max(...rows.map((r) => r.what.length));
    const fw = Math.max(...rows.map((r) => r.figure.length));
    for (const r of rows) {
      const verdict = r.ok === null ? '' : r.ok ? 'MET' : 'MISSED';
      console.log(
        `  ${r.what.padEnd(w)}  ${r.figure.padEnd(fw)}  ${r.target.padEnd(26)} ${verdict}`,
      );
    }
  } finally {
    server.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
