import type { Readable, Writable } from 'node:stream';

/** Options of one call through a Runner. */
export interface RunOptions {
  /** exit codes this call site accepts; anything else rejects with an ExecError. Default `[0]`. */
  okCodes?: readonly number[];
  /** kill (SIGKILL) after this many milliseconds and reject; default 30 s. */
  timeoutMs?: number;
  /** aborting kills the process and rejects with an ExecError whose `aborted` is true. */
  signal?: AbortSignal;
  /** bytes written to stdin, then stdin is closed. */
  input?: string | Buffer;
  /** extra environment on top of the runner's minimal one (`PATH`, `LC_ALL=C`). */
  env?: Readonly<Record<string, string>>;
  /** working directory. */
  cwd?: string;
}

/** The outcome of a finished call. */
export interface RunResult {
  argv: readonly string[];
  /** exit code, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Options of a long-running process started through a Runner. */
export interface SpawnOptions {
  env?: Readonly<Record<string, string>>;
  cwd?: string;
  signal?: AbortSignal;
  /** 'pipe' (default) or 'ignore' for each of stdin, stdout, stderr. */
  stdio?: readonly ['pipe' | 'ignore', 'pipe' | 'ignore', 'pipe' | 'ignore'];
  /** this many extra pipes, readable by the parent, become the child's fd 3, 4, ... */
  extraPipes?: number;
  /** start the child in a new session/process group (detached), so it can outlive a stop. */
  detached?: boolean;
}

/** A process started with `Runner.spawn`; its audit record is written when it exits. */
export interface Spawned {
  argv: readonly string[];
  pid: number;
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  /** the read ends of `extraPipes`, in order (child fd 3 first). */
  extra: readonly Readable[];
  /** resolves when the process has exited (never rejects). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): boolean;
}

/**
 * The one way hostplane starts processes. `argv[0]` is an absolute path from the runner's
 * allowlist; there is never a shell in between.
 */
export interface Runner {
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  spawn(argv: readonly string[], opts?: SpawnOptions): Spawned;
}
