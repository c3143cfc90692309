// Machine exec through the three hops (exec-gateway → machinepoollet → machinebroker) against a
// direct WebSocket to the broker's token URL: throughput of a large output and keystroke
// round-trip latency. Targets (issue 6): chain ≥ 50% of direct throughput; ≤ 0.5 ms added per
// hop at p50.
// By default each daemon runs as its own process from its main.ts, as in production, with the
// node options its package gives it (packaging/deb/packages: node_options; --plain-node leaves
// them out); --inproc runs all three in the bench's process (one event loop for every hop: a
// pessimistic figure). Each throughput round prints the CPU seconds per GiB of every process.
// The first --warmup rounds of each path are printed but not counted.
//   npx tsx test/bench/machine-exec.ts [--mib 256] [--keys 2000] [--rounds 3] [--warmup 1]
//                                       [--inproc] [--json] [--plain-node]
//                                       [--daemon-arg NODE_OPTION]...
// On the target platform's userland (Debian 13's nodejs and OpenSSL): test/bench/on-target.sh.
//   bash test/bench/on-target.sh test/bench/machine-exec.ts [options]
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { ConnectionOptions } from 'node:tls';
import { parseArgs } from 'node:util';
import { loadSpecs } from '../../scripts/package.ts';
import { createRunner, type Spawned } from '../../shared/exec/index.ts';
import { silentLogger } from '../../shared/log/index.ts';
import { connectExec, type ExecSession } from '../../shared/stream/client.ts';
import { createRuntimeClient } from '../../shared/stream/iri.ts';
import { startChain } from '../integration/machine-exec/fixture.ts';
import { tempDir } from '../integration/machine-exec/helpers.ts';
import { createTestCa } from '../integration/machine-exec/pki.ts';

/** What the measurements need of a running chain. */
interface Chain {
  gatewayUrl: string;
  alice: ConnectionOptions;
  runtimeSocket: string;
  /** the daemons' PIDs by name, when each runs in its own process */
  pids: Record<string, number>;
  /** the node options each daemon process runs with */
  nodeOptions: Record<string, string[]>;
  close(): Promise<void>;
}

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    keys: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    // unmeasured rounds first: JIT, heap sizes and TCP windows of every process settle
    warmup: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    inproc: { type: 'boolean', default: false },
    // without the node options of the daemons' packages
    'plain-node': { type: 'boolean', default: false },
    // node options for each daemon, e.g. --daemon-arg=--cpu-prof --daemon-arg=--cpu-prof-dir=/tmp
    'daemon-arg': { type: 'string', multiple: true, default: [] },
  },
});
const MIB = Number(values.mib);
const KEYS = Number(values.keys);
const ROUNDS = Number(values.rounds);
const WARMUP = Number(values.warmup);

const EXEC = (name: string): string =>
  `/apis/compute.ironcore.dev/namespaces/default/machines/${name}/exec?tty=false`;

type Path = 'direct' | 'chain';

async function open(
  chain: Chain,
  path: Path,
  machine: string,
  onOutput: (d: Buffer) => void,
): Promise<ExecSession> {
  if (path === 'chain') {
    return connectExec(chain.gatewayUrl + EXEC(machine), {
      tls: chain.alice,
      onOutput: (_c, d) => {
        onOutput(d);
      },
    });
  }
  const runtime = createRuntimeClient(chain.runtimeSocket);
  try {
    return await connectExec(await runtime.exec(machine, false), {
      onOutput: (_c, d) => {
        onOutput(d);
      },
    });
  } finally {
    runtime.close();
  }
}

/** CPU seconds used so far by `pid` (user + system, from /proc). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** CPU seconds of this process and each daemon process so far. */
async function cpuByProcess(chain: Chain): Promise<Map<string, number>> {
  const u = process.cpuUsage();
  const out = new Map([['client', (u.user + u.system) / 1e6]]);
  for (const [name, pid] of Object.entries(chain.pids)) out.set(name, await cpuSeconds(pid));
  return out;
}

/** CPU seconds per GiB moved, by process, between two cpuByProcess readings. */
const cpuCost = (a: Map<string, number>, b: Map<string, number>, bytes: number): string =>
  [...b]
    .map(([k, v]) => `${k} ${((v - (a.get(k) ?? 0)) / (bytes / 1024 ** 3)).toFixed(2)}`)
    .join(', ');

async function throughput(chain: Chain, path: Path, label = ''): Promise<number> {
  let bytes = 0;
  let firstByte = 0;
  const cpu0 = await cpuByProcess(chain);
  const t0 = performance.now();
  const s = await open(chain, path, 'bulk', (d) => {
    if (bytes === 0) firstByte = performance.now() - t0;
    bytes += d.length;
  });
  s.closeStdin();
  const st = await s.status;
  const secs = (performance.now() - t0) / 1000;
  if (st.kind !== 'exited' || st.code !== 0 || bytes !== MIB * 1024 * 1024) {
    throw new Error(`bulk session on ${path}: status ${JSON.stringify(st)}, ${bytes} bytes`);
  }
  if (!values.json) {
    const cost = cpuCost(cpu0, await cpuByProcess(chain), bytes);
    const rate = (bytes / secs / 1024 ** 2).toFixed(1);
    console.log(
      `  ${path}${label}: ${rate} MiB/s, first byte after ${firstByte.toFixed(1)} ms; cpu s/GiB: ${cost}`,
    );
  }
  return bytes / secs / 1024 / 1024;
}

async function latency(chain: Chain, path: Path): Promise<number[]> {
  let waiting: (() => void) | undefined;
  let got = 0;
  const s = await open(chain, path, 'echo', (d) => {
    got += d.length;
    waiting?.();
  });
  const samples: number[] = [];
  for (let i = 0; i < KEYS + 100; i++) {
    const want = got + 1;
    const t0 = process.hrtime.bigint();
    const echoed = new Promise<void>((resolve) => {
      waiting = () => {
        if (got >= want) resolve();
      };
    });
    s.write('x');
    await echoed;
    if (i >= 100) samples.push(Number(process.hrtime.bigint() - t0) / 1e6); // first 100: warm-up
  }
  s.closeStdin();
  await s.status;
  return samples.sort((a, b) => a - b);
}

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const MACHINES = [
  {
    name: 'bulk',
    target: `{ type = "sandbox", command = ["/bin/dd", "if=/dev/zero", "bs=1M", "count=${MIB}", "status=none"] }`,
  },
  { name: 'echo', target: '{ type = "sandbox", command = ["/bin/cat"] }' },
];
const chain: Chain = values.inproc
  ? await (async () => {
      const c = await startChain(MACHINES);
      return {
        gatewayUrl: c.gatewayUrl,
        alice: c.alice,
        runtimeSocket: c.broker.socketPath,
        pids: {},
        nodeOptions: {},
        close: () => c.close(),
      };
    })()
  : await startProcessChain(MACHINES);
try {
  const tp: Record<Path, number[]> = { direct: [], chain: [] };
  for (let r = 0; r < WARMUP; r++) {
    for (const p of ['direct', 'chain'] as const) await throughput(chain, p, ' (warm-up)');
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const p of ['direct', 'chain'] as const) tp[p].push(await throughput(chain, p));
  }
  const lat: Record<Path, number[]> = {
    direct: await latency(chain, 'direct'),
    chain: await latency(chain, 'chain'),
  };
  const tpDirect = median(tp.direct);
  const tpChain = median(tp.chain);
  const p50d = pct(lat.direct, 0.5);
  const p50c = pct(lat.chain, 0.5);
  const result = {
    mode: values.inproc ? 'one process' : 'one process per daemon',
    node_options: chain.nodeOptions,
    output_mib: MIB,
    throughput_mib_s: {
      direct: round(tpDirect),
      chain: round(tpChain),
      ratio: round(tpChain / tpDirect, 3),
    },
    keystroke_ms: {
      direct: { p50: round(p50d, 3), p99: round(pct(lat.direct, 0.99), 3) },
      chain: { p50: round(p50c, 3), p99: round(pct(lat.chain, 0.99), 3) },
      ratio_p50: round(p50c / p50d, 2),
      added_per_proxy_hop_p50: round((p50c - p50d) / 2, 3),
    },
    targets_met: { throughput: tpChain / tpDirect >= 0.5, latency: (p50c - p50d) / 2 <= 0.5 },
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(
      `${result.mode}; node options: ` +
        (Object.entries(chain.nodeOptions)
          .map(([k, v]) => `${k} ${v.length > 0 ? v.join(' ') : '(none)'}`)
          .join(', ') || '(bench process)'),
    );
    console.log(
      `throughput of ${MIB} MiB output (median of ${ROUNDS}, after ${WARMUP} warm-up): direct ${result.throughput_mib_s.direct} MiB/s, ` +
        `chain ${result.throughput_mib_s.chain} MiB/s, ratio ${result.throughput_mib_s.ratio}`,
    );
    console.log(
      `keystroke round trip (${KEYS}): direct p50 ${result.keystroke_ms.direct.p50} ms p99 ${result.keystroke_ms.direct.p99} ms; ` +
        `chain p50 ${result.keystroke_ms.chain.p50} ms p99 ${result.keystroke_ms.chain.p99} ms; ` +
        `added per proxy hop at p50 ${result.keystroke_ms.added_per_proxy_hop_p50} ms`,
    );
    console.log(
      `targets: throughput ≥ 50% ${result.targets_met.throughput ? 'met' : 'MISSED'}, ` +
        `≤ 0.5 ms per hop ${result.targets_met.latency ? 'met' : 'MISSED'}`,
    );
  }
} finally {
  await chain.close();
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Starts the three daemons from their main.ts, each in its own process, and waits for READY. */
async function startProcessChain(
  machines: readonly { name: string; target: string }[],
): Promise<Chain> {
  const checkout = path.resolve(import.meta.dirname, '../..');
  const dir = await tempDir('bench');
  const ca = await createTestCa();
  const files = async (name: string, cn: string, server?: string[]): Promise<string> => {
    const f = await ca.write(dir, name, await ca.issue(cn, server === undefined ? {} : { server }));
    return `ca_file = ${JSON.stringify(f.ca_file)}\ncert_file = ${JSON.stringify(f.cert_file)}\nkey_file = ${JSON.stringify(f.key_file)}\n`;
  };
  const socket = path.join(dir, 'broker.sock');
  const [poolletPort, gatewayPort] = [await freePort(), await freePort()];
  const configs = {
    machinebroker:
      `[runtime]\nsocket = ${JSON.stringify(socket)}\n` +
      machines
        .map(
          (m) =>
            `[[machines]]\nid = "${m.name}"\nnamespace = "default"\nname = "${m.name}"\ntarget = ${m.target}\n`,
        )
        .join(''),
    machinepoollet:
      `listen = "127.0.0.1:${poolletPort}"\n[tls]\n${await files('poollet', 'poollet', ['127.0.0.1'])}` +
      `[runtime]\nsocket = ${JSON.stringify(socket)}\n[[policy]]\nusers = ["alice"]\n`,
    'exec-gateway':
      `listen = "127.0.0.1:${gatewayPort}"\n[tls]\n${await files('gw', 'gateway', ['127.0.0.1'])}` +
      `[upstream_tls]\n${await files('gw-client', 'exec-gateway')}[[policy]]\nusers = ["alice"]\n` +
      `[[pools]]\nname = "p"\nport = ${poolletPort}\naddresses = [{ type = "InternalIP", address = "127.0.0.1" }]\n` +
      machines
        .map((m) => `[[machines]]\nnamespace = "default"\nname = "${m.name}"\npool = "p"\n`)
        .join(''),
  };
  await mkdir(path.join(dir, 'etc'));
  const specs = await loadSpecs();
  const nodeOptions = (daemon: string): string[] =>
    values['plain-node'] ? [] : (specs.find((s) => s.daemon === daemon)?.node_options ?? []);
  const runner = createRunner({ log: silentLogger(), allow: [process.execPath] });
  const procs: Spawned[] = [];
  for (const [name, text] of Object.entries(configs)) {
    const file = path.join(dir, 'etc', `${name}.toml`);
    await writeFile(file, text);
    const p = runner.spawn(
      [
        process.execPath,
        ...nodeOptions(name),
        ...values['daemon-arg'],
        '--import',
        'tsx',
        path.join(checkout, 'daemons', name, 'main.ts'),
        '--config',
        file,
      ],
      { cwd: checkout, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    procs.push(p);
    let stderr = '';
    p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: p.stdout! });
      lines.on('line', (l) => {
        if (l.includes('"msg":"ready"')) resolve();
      });
      void p.exited.then(({ code }) => {
        reject(new Error(`${name} exited ${code} before READY: ${stderr}`));
      });
    });
  }
  const leaf = await ca.issue('alice');
  return {
    gatewayUrl: `https://127.0.0.1:${gatewayPort}`,
    alice: { ca: ca.cert, cert: leaf.cert, key: leaf.key },
    runtimeSocket: socket,
    pids: Object.fromEntries(Object.keys(configs).map((name, i) => [name, procs[i]!.pid])),
    nodeOptions: Object.fromEntries(
      Object.keys(configs).map((name) => [name, [...nodeOptions(name), ...values['daemon-arg']]]),
    ),
    async close() {
      for (const p of procs.reverse()) {
        p.kill('SIGTERM');
        await p.exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
