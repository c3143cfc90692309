// Helpers for the executor integration tests: a real runner, the built init, process scans.
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRunner, findBinary } from '../../../shared/exec/index.ts';
import { silentLogger, type Logger } from '../../../shared/log/index.ts';
import { ensureNsInit } from '../../../shared/ns/index.ts';
import { Executor, type ExecutorOptions } from '../../../daemons/cu-thor-server/executor.ts';
import type { Command, OutputChunk } from '../../../daemons/cu-thor-server/types.ts';

export interface Env {
  unshare: string;
  nsinit: string;
  node: string;
  runner: ReturnType<typeof createRunner>;
  log: Logger;
}

/** A runner allowed to start unshare (and node, for the crash fixture), and the built init. */
export async function setupEnv(log: Logger = silentLogger()): Promise<Env> {
  const unshare = await findBinary('unshare');
  const gcc = await findBinary('gcc');
  const buildRunner = createRunner({ log, allow: [gcc] });
  const nsinit = await ensureNsInit(buildRunner);
  const node = process.execPath;
  const runner = createRunner({ log, allow: [unshare, node] });
  return { unshare, nsinit, node, runner, log };
}

/** An executor on a fresh state dir, namespaces only (the host has no usable cgroup v2). */
export async function makeExecutor(
  env: Env,
  over: Partial<ExecutorOptions> = {},
): Promise<{ ex: Executor; stateDir: string }> {
  const stateDir = over.stateDir ?? (await mkdtemp(join(tmpdir(), 'cu-thor-exec-')));
  // a plain temp dir as the cgroup root: never the host's cgroups
  const cgroupRoot = await mkdtemp(join(tmpdir(), 'cu-thor-nocgroup-'));
  const ex = await Executor.create({
    runner: env.runner,
    log: env.log,
    stateDir,
    cgroup: { mode: 'optional', root: cgroupRoot },
    limits: { defaults: {}, max: {}, total: {} },
    maxConcurrent: 200,
    stopGraceMs: 2_000,
    maxOutputBytes: 256 * 1024 * 1024,
    nsinit: env.nsinit,
    unshare: env.unshare,
    ...over,
  });
  return { ex, stateDir };
}

/** Output as "o:..."/"e:..."/"T" strings, adjacent chunks of one stream merged. */
export async function outputText(cmd: Command, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  for await (const c of cmd.output(signal === undefined ? {} : { signal })) {
    const t = chunkText(c);
    const last = out.at(-1);
    if (last !== undefined && t !== 'T' && last !== 'T' && last[0] === t[0]) {
      out[out.length - 1] = last + t.slice(2);
    } else out.push(t);
  }
  return out;
}

function chunkText(c: OutputChunk): string {
  return c.kind === 'truncated' ? 'T' : `${c.stream === 'stdout' ? 'o' : 'e'}:${c.data.toString()}`;
}

/** Resolves once the job's stdout contains `text`. */
export async function waitForOutput(cmd: Command, text: string): Promise<void> {
  let seen = '';
  for await (const c of cmd.output()) {
    if (c.kind === 'data') seen += c.data.toString();
    if (seen.includes(text)) return;
  }
  throw new Error(
    `job ended without printing ${JSON.stringify(text)}; printed ${JSON.stringify(seen)}`,
  );
}

interface Proc {
  pid: number;
  ppid: number;
  cmdline: string[];
}

/** Every process on the host with its parent and argv. */
export async function processes(): Promise<Proc[]> {
  const out: Proc[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      out.push({ pid: Number(name), ppid, cmdline });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** `sleep MARKER` processes, and those of them descending from `ancestor`. */
export async function findMarked(
  marker: string,
  ancestor = process.pid,
): Promise<{ all: Proc[]; descendants: Proc[] }> {
  const procs = await processes();
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const descends = (p: Proc): boolean => {
    for (let cur: Proc | undefined = p, n = 0; cur !== undefined && n < 64; n++) {
      if (cur.ppid === ancestor) return true;
      cur = byPid.get(cur.ppid);
    }
    return false;
  };
  const all = procs.filter((p) => p.cmdline[0] === 'sleep' && p.cmdline[1] === marker);
  return { all, descendants: all.filter(descends) };
}

/** Polls `check` until it returns true (for process-table changes, which have no event). */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
