// The web terminal against a direct PTY: keystroke echo latency (p50/p99) and output throughput
// through webterminal (API, attach WebSocket, session fan-out, sandbox in namespaces) as a ratio
// to the same command under node-pty behind a plain WebSocket with no framing. The webterminal
// runs in the bench's process, once over TLS (as deployed) and once over plain HTTP on loopback
// (the behind-a-proxy mode), so the TLS share of the cost is visible. Needs root (namespaces).
// Both sides run `stty raw -echo` first: the echo measured is the program's (cat), not the tty's.
//   npx tsx test/bench/webterminal.ts [--mib 128] [--keys 2000] [--rounds 3] [--json]
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import * as pty from 'node-pty';
import WebSocket, { WebSocketServer } from 'ws';
import { silentLogger } from '../../shared/log/index.ts';
import { connectExec } from '../../shared/stream/client.ts';
import { startWebterminal, type Webterminal } from '../../daemons/webterminal/server.ts';
import { targetStarter } from '../../daemons/webterminal/targets.ts';
import {
  sandboxDeps,
  testConfig,
  testPki,
  TOKENS,
  type Pki,
} from '../integration/webterminal/helpers.ts';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '128' },
    keys: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const MIB = Number(values.mib);
const KEYS = Number(values.keys);
const ROUNDS = Number(values.rounds);
const WARMUP = 100;
/** progress on stderr, so --json stays clean */
const note = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};
const READY = 'READY';

const SH = '/bin/sh';
const ECHO = ['-c', `stty raw -echo; printf ${READY}; exec cat`];
const BULK = [
  '-c',
  // stays until closed: a PTY whose program exits can lose its last bytes
  `stty raw -echo; printf ${READY}; read -r go; dd if=/dev/zero bs=1M count=${MIB} status=none; read -r end`,
];

/** One terminal, whichever way it is reached: bytes in, bytes out, and an end. */
interface Term {
  write(data: string): void;
  /** ends it (for the webterminal: deletes the session, so the next round starts afresh) */
  close(): Promise<void>;
}
type Opener = (kind: 'echo' | 'bulk', onData: (d: Buffer) => void) => Promise<Term>;

// ---- direct: node-pty behind a plain WebSocket, raw bytes both ways ----

async function startDirect(): Promise<{ open: Opener; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((r) => wss.once('listening', r));
  wss.on('connection', (ws, req) => {
    const args = new URL(req.url ?? '/', 'http://x').pathname === '/bulk' ? BULK : ECHO;
    const p = pty.spawn(SH, args, { name: 'xterm', cols: 80, rows: 24, encoding: null });
    let paused = false;
    p.onData((d: string | Buffer) => {
      ws.send(d, () => {
        if (paused && ws.bufferedAmount < 1 << 18) {
          paused = false;
          p.resume();
        }
      });
      if (!paused && ws.bufferedAmount > 1 << 20) {
        paused = true;
        p.pause();
      }
    });
    p.onExit(() => {
      ws.close(1000);
    });
    ws.on('message', (m: Buffer) => {
      p.write(m);
    });
    ws.on('close', () => {
      p.kill('SIGKILL');
    });
  });
  const port = (wss.address() as AddressInfo).port;
  return {
    open: (kind, onData) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/${kind}`, { perMessageDeflate: false });
        ws.on('message', (m: Buffer) => {
          onData(m);
        });
        ws.once('error', reject);
        ws.once('open', () => {
          resolve({
            write: (d) => {
              ws.send(Buffer.from(d));
            },
            close: () => {
              ws.close(1000);
              return Promise.resolve();
            },
          });
        });
      }),
    close: () =>
      new Promise<void>((r) => {
        wss.close(() => {
          r();
        });
      }),
  };
}

// ---- through the webterminal: create, wait ready, attach with a one-time token ----

async function startThroughWebterminal(
  pki: Pki | undefined,
): Promise<{ open: Opener; close(): Promise<void> }> {
  const log = silentLogger();
  const config = testConfig(
    `[[targets]]\nname = "echo"\ntype = "sandbox"\ncommand = ${JSON.stringify([SH, ...ECHO])}\n` +
      `[[targets]]\nname = "bulk"\ntype = "sandbox"\ncommand = ${JSON.stringify([SH, ...BULK])}\n`,
  );
  const wt: Webterminal = await startWebterminal(config, {
    log,
    clock: Date.now,
    start: targetStarter(await sandboxDeps(), log),
    ...(pki === undefined ? {} : { tls: pki.server }),
  });
  const auth = { authorization: `Bearer ${TOKENS.alice}`, origin: wt.origin };
  const api = (method: string, p: string, body?: unknown): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const text = body === undefined ? undefined : JSON.stringify(body);
      const req = (pki === undefined ? http : https).request(
        new URL(p, wt.origin),
        {
          method,
          ...(pki === undefined ? {} : { ca: pki.ca }),
          headers: {
            ...auth,
            ...(text === undefined ? {} : { 'content-type': 'application/json' }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const b = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 0) >= 300)
              reject(new Error(`${method} ${p}: ${res.statusCode} ${b}`));
            else resolve(b === '' ? {} : (JSON.parse(b) as Record<string, unknown>));
          });
        },
      );
      req.on('error', reject);
      req.end(text);
    });
  return {
    async open(kind, onData) {
      const created = await api('POST', '/api/terminals', { target: kind });
      const got = await api('GET', `/api/terminals/${String(created['id'])}`);
      const attach = got['attach'] as { url: string };
      const s = await connectExec(attach.url, {
        ...(pki === undefined ? {} : { tls: { ca: pki.ca } }),
        headers: auth,
        onOutput: (_ch, d) => {
          onData(d);
        },
      });
      return {
        write: (d) => {
          s.write(d);
        },
        close: async () => {
          s.close();
          await api('DELETE', `/api/terminals/${String(created['id'])}`);
        },
      };
    },
    close: () => wt.close(),
  };
}

// ---- measurements ----

/** Opens a terminal and resolves once its program printed READY (raw mode is on). */
async function openReady(
  open: Opener,
  kind: 'echo' | 'bulk',
  onData: (d: Buffer) => void,
): Promise<Term> {
  let ready: () => void = () => undefined;
  let seen = '';
  let isReady = false;
  const readyP = new Promise<void>((r) => (ready = r));
  const t = await open(kind, (d) => {
    if (isReady) {
      onData(d);
      return;
    }
    seen += d.toString('latin1');
    const i = seen.indexOf(READY);
    if (i >= 0) {
      isReady = true;
      ready();
      const rest = Buffer.from(seen.slice(i + READY.length), 'latin1');
      if (rest.length > 0) onData(rest);
    }
  });
  await readyP;
  return t;
}

async function throughput(open: Opener): Promise<number> {
  const want = MIB * 1024 * 1024;
  let bytes = 0;
  let done: () => void = () => undefined;
  const all = new Promise<void>((r) => (done = r));
  const t = await openReady(open, 'bulk', (d) => {
    bytes += d.length;
    if (bytes >= want) done();
  });
  const t0 = performance.now();
  t.write('\n');
  await all;
  const secs = (performance.now() - t0) / 1000;
  await t.close();
  return bytes / secs / 1024 / 1024;
}

async function latency(open: Opener): Promise<number[]> {
  let got = 0;
  let waiting: (() => void) | undefined;
  const t = await openReady(open, 'echo', (d) => {
    got += d.length;
    waiting?.();
  });
  const samples: number[] = [];
  for (let i = 0; i < KEYS + WARMUP; i++) {
    const want = got + 1;
    const t0 = process.hrtime.bigint();
    const echoed = new Promise<void>((resolve) => {
      waiting = () => {
        if (got >= want) resolve();
      };
    });
    t.write('x');
    await echoed;
    if (i >= WARMUP) samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  await t.close();
  return samples.sort((a, b) => a - b);
}

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

type PathName = 'direct' | 'webterminal_tls' | 'webterminal_http';
note('starting');
const pki = await testPki();
const paths: Record<PathName, { open: Opener; close(): Promise<void> }> = {
  direct: await startDirect(),
  webterminal_tls: await startThroughWebterminal(pki),
  webterminal_http: await startThroughWebterminal(undefined),
};
try {
  const names = Object.keys(paths) as PathName[];
  const tp = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<
    PathName,
    number[]
  >;
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of names) {
      note(`throughput ${n} round ${r + 1}`);
      tp[n].push(await throughput(paths[n].open));
    }
  }
  const lat = {} as Record<PathName, number[]>;
  for (const n of names) {
    note(`latency ${n}`);
    lat[n] = await latency(paths[n].open);
  }

  const d = { tp: median(tp.direct), p50: pct(lat.direct, 0.5), p99: pct(lat.direct, 0.99) };
  type Figures = Record<
    | 'throughput_mib_s'
    | 'throughput_ratio'
    | 'echo_p50_ms'
    | 'echo_p99_ms'
    | 'echo_p50_ratio'
    | 'echo_p99_ratio',
    number
  >;
  const figures = Object.fromEntries(
    names.map((n): [PathName, Figures] => {
      const t = median(tp[n]);
      const p50 = pct(lat[n], 0.5);
      const p99 = pct(lat[n], 0.99);
      return [
        n,
        {
          throughput_mib_s: round(t),
          throughput_ratio: round(t / d.tp, 3),
          echo_p50_ms: round(p50, 3),
          echo_p99_ms: round(p99, 3),
          echo_p50_ratio: round(p50 / d.p50, 2),
          echo_p99_ratio: round(p99 / d.p99, 2),
        },
      ];
    }),
  ) as Record<PathName, Figures>;
  const result = { output_mib: MIB, keystrokes: KEYS, load_average: os.loadavg(), ...figures };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(
      `output ${MIB} MiB (median of ${ROUNDS}), keystroke echo ${KEYS} (after ${WARMUP} warm-up), ` +
        `load average ${os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
    );
    for (const n of names) {
      const r = figures[n];
      console.log(
        `${n.padEnd(17)} ${String(r.throughput_mib_s).padStart(7)} MiB/s (x${r.throughput_ratio})  ` +
          `echo p50 ${r.echo_p50_ms} ms (x${r.echo_p50_ratio})  p99 ${r.echo_p99_ms} ms (x${r.echo_p99_ratio})`,
      );
    }
  }
} finally {
  for (const p of Object.values(paths)) await p.close();
}
