// The one real Runner: every process hostplane starts goes through here, by absolute path from an
// allowlist, never through a shell, with a minimal environment, a timeout, an AbortSignal, and
// exactly one audit record per call.
import { spawn as nodeSpawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { access, stat } from 'node:fs/promises';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import type { Logger } from '../log/index.ts';
import type { RunOptions, RunResult, Runner, SpawnOptions, Spawned } from './types.ts';

export type * from './types.ts';

/** The environment every child starts from; `opts.env` is laid on top. */
export const BASE_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
  LC_ALL: 'C',
});
/** Where `findBinary` looks, in order. */
export const DEFAULT_BIN_DIRS: readonly string[] = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];
export const DEFAULT_TIMEOUT_MS = 30_000;
/** `run()` keeps at most this much of stdout and of stderr; more kills the process. */
export const MAX_CAPTURE_BYTES = 64 * 1024 * 1024;
const STDERR_HEAD_LINES = 5;
const STDERR_HEAD_CHARS = 512;
const LOG_ARGV_CHARS = 4096;
/** how long run() waits for stdout/stderr to close once the process has exited. */
const EXIT_DRAIN_MS = 2_000;

export interface ExecErrorFields {
  argv: readonly string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut?: boolean;
  aborted?: boolean;
  /** the call never started: not allowed, or the kernel refused to exec (ENOENT, EACCES...). */
  notStarted?: boolean;
}

/** A call that failed: not allowed, not started, an exit code the caller didn't accept, a signal, a timeout or an abort. */
export class ExecError extends Error {
  readonly argv: readonly string[];
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly aborted: boolean;
  readonly notStarted: boolean;

  constructor(reason: string, f: ExecErrorFields, options?: ErrorOptions) {
    super(`${describeArgv(f.argv)}: ${reason}`, options);
    this.name = 'ExecError';
    this.argv = f.argv;
    this.code = f.code;
    this.signal = f.signal;
    this.stdout = f.stdout;
    this.stderr = f.stderr;
    this.timedOut = f.timedOut ?? false;
    this.aborted = f.aborted ?? false;
    this.notStarted = f.notStarted ?? false;
  }
}

export interface RunnerOptions {
  log: Logger;
  /** absolute paths of the binaries this runner may start; anything else is refused. */
  allow: readonly string[];
  /** timeout of `run()` calls that don't set one; default 30 s. */
  defaultTimeoutMs?: number;
}

/** The real Runner (see the module comment); only `main.ts` and tests build one. */
export function createRunner(opts: RunnerOptions): Runner {
  const log = opts.log.child({ component: 'exec' });
  const allow = new Set<string>();
  for (const p of opts.allow) {
    if (!path.isAbsolute(p)) {
      throw new Error(
        `creating runner: allowlist entry ${JSON.stringify(p)} is not an absolute path`,
      );
    }
    allow.add(path.normalize(p));
  }
  const defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;

  /** Why argv may not run, or null when it may. */
  const refusal = (argv: readonly string[]): string | null => {
    const bin = argv[0];
    if (bin === undefined || bin === '') return 'empty argv';
    if (!path.isAbsolute(bin)) return `refusing ${JSON.stringify(bin)}: not an absolute path`;
    if (!allow.has(bin)) return `refusing ${bin}: not in this runner's allowlist`;
    return null;
  };

  return {
    run(argv, ro = {}) {
      const started = performance.now();
      const why = refusal(argv);
      if (why !== null) {
        log.warn({ argv: logArgv(argv), refused: why }, 'exec');
        return Promise.reject(new ExecError(why, notStarted(argv)));
      }
      if (ro.signal?.aborted === true) {
        log.warn({ argv: logArgv(argv), aborted: true, ms: 0 }, 'exec');
        return Promise.reject(
          new ExecError('aborted before start', { ...notStarted(argv), aborted: true }),
        );
      }
      return runOnce(log, argv, ro, defaultTimeoutMs, started);
    },

    spawn(argv, so = {}) {
      const why = refusal(argv);
      if (why !== null) {
        log.warn({ argv: logArgv(argv), refused: why }, 'exec');
        throw new ExecError(why, notStarted(argv));
      }
      return spawnLong(log, argv, so);
    },
  };
}

/** The first of `dirs` holding an executable regular file `name`; rejects when none does. */
export async function findBinary(
  name: string,
  dirs: readonly string[] = DEFAULT_BIN_DIRS,
): Promise<string> {
  if (name.includes('/')) throw new Error(`finding binary ${name}: give a bare name, not a path`);
  for (const dir of dirs) {
    const p = path.join(dir, name);
    try {
      if (!(await stat(p)).isFile()) continue;
      await access(p, fsConstants.X_OK);
      return p;
    } catch {
      // not here; try the next directory
    }
  }
  throw new Error(`finding binary ${name}: not an executable file in ${dirs.join(', ')}`);
}

function runOnce(
  log: Logger,
  argv: readonly string[],
  ro: RunOptions,
  defaultTimeoutMs: number,
  started: number,
): Promise<RunResult> {
  const okCodes = ro.okCodes ?? [0];
  const timeoutMs = ro.timeoutMs ?? defaultTimeoutMs;
  return new Promise<RunResult>((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = nodeSpawn(argv[0]!, argv.slice(1), {
        shell: false,
        env: { ...BASE_ENV, ...ro.env },
        ...(ro.cwd === undefined ? {} : { cwd: ro.cwd }),
        stdio: [ro.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      // synchronous failures: invalid cwd type, EAGAIN and the like
      const reason = `cannot start: ${errText(err)}`;
      log.warn({ argv: logArgv(argv), error: reason, ms: elapsed(started) }, 'exec');
      reject(new ExecError(reason, notStarted(argv), { cause: err }));
      return;
    }

    const out = new Capture();
    const errOut = new Capture();
    let timedOut = false;
    let aborted = false;
    let overflow = false;
    let settled = false;
    child.stdout!.on('data', (b: Buffer) => {
      if (!out.push(b)) killFor(() => (overflow = true));
    });
    child.stderr!.on('data', (b: Buffer) => {
      if (!errOut.push(b)) killFor(() => (overflow = true));
    });
    if (child.stdin !== null) {
      // a child that exits without reading its input makes this EPIPE; the exit status says more
      child.stdin.on('error', () => undefined);
      child.stdin.end(ro.input);
    }

    function killFor(mark: () => void): void {
      if (settled) return;
      mark();
      child.kill('SIGKILL');
    }
    const timer =
      Number.isFinite(timeoutMs) && timeoutMs > 0
        ? setTimeout(() => {
            killFor(() => (timedOut = true));
          }, timeoutMs)
        : undefined;
    const onAbort = (): void => {
      killFor(() => (aborted = true));
    };
    ro.signal?.addEventListener('abort', onAbort, { once: true });

    const finish = (): void => {
      settled = true;
      clearTimeout(drainTimer);
      if (timer !== undefined) clearTimeout(timer);
      ro.signal?.removeEventListener('abort', onAbort);
    };

    child.once('error', (err) => {
      if (settled) return;
      finish();
      const reason = `cannot start: ${errText(err)}`;
      log.warn({ argv: logArgv(argv), error: reason, ms: elapsed(started) }, 'exec');
      reject(new ExecError(reason, notStarted(argv), { cause: err }));
    });
    // A grandchild that inherited stdout/stderr can keep them open after the child is gone:
    // give the pipes a moment to drain after 'exit', then stop waiting for them.
    let drainTimer: NodeJS.Timeout | undefined;
    child.once('exit', () => {
      drainTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, EXIT_DRAIN_MS);
    });
    // 'close' (not 'exit'): all of stdout and stderr has been read by then
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      finish();
      const stdout = out.text();
      const stderr = errOut.text();
      const ms = elapsed(started);
      const head = stderrHead(stderr);
      const ok = !timedOut && !aborted && !overflow && code !== null && okCodes.includes(code);
      const record: Record<string, unknown> = { argv: logArgv(argv), code, signal, ms };
      if (head !== '') record['stderrHead'] = head;
      if (timedOut) record['timedOut'] = true;
      if (aborted) record['aborted'] = true;
      if (overflow) record['overflow'] = true;
      if (ok) {
        log.info(record, 'exec');
        resolve({ argv, code, signal, stdout, stderr, durationMs: ms });
        return;
      }
      log.warn(record, 'exec');
      let reason: string;
      if (timedOut) reason = `timed out after ${timeoutMs} ms`;
      else if (aborted) reason = 'aborted';
      else if (overflow) reason = `printed more than ${MAX_CAPTURE_BYTES} bytes`;
      else if (code === null) reason = `killed by ${signal ?? 'a signal'}`;
      else reason = `exited ${code}`;
      const detail = firstLine(stderr);
      if (detail !== '') reason += `: ${detail}`;
      reject(new ExecError(reason, { argv, code, signal, stdout, stderr, timedOut, aborted }));
    });
  });
}

function spawnLong(log: Logger, argv: readonly string[], so: SpawnOptions): Spawned {
  const started = performance.now();
  const io = so.stdio ?? ['pipe', 'pipe', 'pipe'];
  const stdio: StdioOptions = [...io];
  for (let i = 0; i < (so.extraPipes ?? 0); i++) stdio.push('pipe');
  let child: ChildProcess;
  try {
    child = nodeSpawn(argv[0]!, argv.slice(1), {
      shell: false,
      env: { ...BASE_ENV, ...so.env },
      ...(so.cwd === undefined ? {} : { cwd: so.cwd }),
      stdio,
      detached: so.detached ?? false,
      windowsHide: true,
    });
  } catch (err) {
    const reason = `cannot start: ${errText(err)}`;
    log.warn({ argv: logArgv(argv), error: reason, ms: elapsed(started) }, 'exec');
    throw new ExecError(reason, notStarted(argv), { cause: err });
  }
  // uv_spawn failures (ENOENT, EACCES) leave pid unset right away; node reports them later as
  // an 'error' event, which must still have a listener.
  let startError: Error | null = null;
  child.once('error', (err) => {
    startError = err;
  });
  if (child.pid === undefined) {
    const reason = `cannot start: ${describeStartFailure(argv, so.cwd)}`;
    log.warn({ argv: logArgv(argv), error: reason, ms: elapsed(started) }, 'exec');
    throw new ExecError(reason, notStarted(argv));
  }
  const pid = child.pid;

  // stderr passes through a tap so the audit record can carry its first lines without taking
  // the stream out of the caller's hands (pausing still pushes back on the child).
  let head = '';
  let stderr: Readable | null = child.stderr;
  if (child.stderr !== null) {
    const source = child.stderr;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        if (head.length < STDERR_HEAD_CHARS) head += chunk.toString('utf8', 0, STDERR_HEAD_CHARS);
        cb(null, chunk);
      },
    });
    source.on('error', (err) => tap.destroy(err));
    tap.on('close', () => source.destroy());
    source.pipe(tap);
    stderr = tap;
  }

  let aborted = false;
  const onAbort = (): void => {
    aborted = true;
    child.kill('SIGKILL');
  };
  if (so.signal?.aborted === true) onAbort();
  else so.signal?.addEventListener('abort', onAbort, { once: true });

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      so.signal?.removeEventListener('abort', onAbort);
      const record: Record<string, unknown> = {
        argv: logArgv(argv),
        pid,
        code,
        signal,
        ms: elapsed(started),
      };
      const h = stderrHead(head);
      if (h !== '') record['stderrHead'] = h;
      if (aborted) record['aborted'] = true;
      if (startError !== null) record['error'] = errText(startError);
      log.info(record, 'exec');
      resolve({ code, signal });
    });
  });

  const extra: Readable[] = [];
  for (let i = 3; i < stdio.length; i++) {
    const s = child.stdio[i];
    if (s === null || s === undefined || !('read' in s)) {
      throw new Error(`spawning ${argv[0]!}: extra pipe on fd ${i} is missing`);
    }
    extra.push(s);
  }

  return {
    argv,
    pid,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr,
    extra,
    exited,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => child.kill(signal),
  };
}

/** Collects a stream's bytes up to MAX_CAPTURE_BYTES. */
class Capture {
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** false when the bound is crossed. */
  push(b: Buffer): boolean {
    this.#bytes += b.length;
    if (this.#bytes > MAX_CAPTURE_BYTES) return false;
    this.#chunks.push(b);
    return true;
  }
  text(): string {
    return Buffer.concat(this.#chunks).toString('utf8');
  }
}

function notStarted(argv: readonly string[]): ExecErrorFields {
  return { argv, code: null, signal: null, stdout: '', stderr: '', notStarted: true };
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

/** The first lines of stderr, bounded, for the audit record. */
export function stderrHead(stderr: string): string {
  const lines = stderr.split('\n', STDERR_HEAD_LINES + 1).slice(0, STDERR_HEAD_LINES);
  let head = lines.join('\n').trimEnd();
  if (head.length > STDERR_HEAD_CHARS) head = `${head.slice(0, STDERR_HEAD_CHARS)}…`;
  return head;
}

function firstLine(s: string): string {
  const line = s.trim().split('\n', 1)[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** argv as it appears in error messages: joined, long ones cut. */
function describeArgv(argv: readonly string[]): string {
  const s = argv.map((a) => (a === '' || /\s/.test(a) ? JSON.stringify(a) : a)).join(' ');
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

/** argv for the audit record: whole unless huge (a job's arguments can be 128 KiB). */
function logArgv(argv: readonly string[]): readonly string[] {
  let total = 0;
  for (const a of argv) total += a.length;
  if (total <= LOG_ARGV_CHARS) return argv;
  const out: string[] = [];
  let used = 0;
  for (const a of argv) {
    if (used >= LOG_ARGV_CHARS) {
      out.push(`…(${argv.length - out.length} more)`);
      break;
    }
    const cut = a.length > 256 ? `${a.slice(0, 256)}…` : a;
    out.push(cut);
    used += cut.length;
  }
  return out;
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code)
      ? `${code}: ${err.message}`
      : err.message;
  }
  return String(err);
}

/**
 * Why uv_spawn failed. Node only reports the errno later, in an 'error' event, so name it from the
 * usual causes (missing or non-executable binary, missing cwd), which the kernel would have given.
 */
function describeStartFailure(argv: readonly string[], cwd: string | undefined): string {
  const probes: [string, () => void][] = [
    [argv[0]!, () => statSync(argv[0]!)],
    [
      argv[0]!,
      () => {
        accessSync(argv[0]!, fsConstants.X_OK);
      },
    ],
  ];
  if (cwd !== undefined) probes.push([`cwd ${cwd}`, () => statSync(cwd)]);
  for (const [what, probe] of probes) {
    try {
      probe();
    } catch (err) {
      return `${what}: ${errText(err)}`;
    }
  }
  return 'spawn failed';
}
