// The library API of the job executor. The gRPC service is a thin layer over it.

/** Where a job ended up; `lost` = it was running when the daemon restarted. */
export type ExecutionStatus =
  'running' | 'exited' | 'stopped' | 'killed' | 'oom_killed' | 'failed_to_start' | 'lost';

/** One block device limit, as io.max takes it. */
export interface IoLimit {
  /** "MAJ:MIN" or a device path such as /dev/vda (resolved to MAJ:MIN). */
  device: string;
  rbps?: number;
  wbps?: number;
}

/** Limits of one job; absent fields take the configured defaults. */
export interface JobLimits {
  /** percent of ONE cpu (150 = one and a half cpus) → cpu.max. */
  cpuPercent?: number;
  memoryMaxBytes?: number;
  memoryHighBytes?: number;
  pidsMax?: number;
  io?: IoLimit[];
}

export interface ResourceUsage {
  cpuUsec: number | null;
  memoryPeakBytes: number | null;
}

/** A snapshot of one execution's metadata. */
export interface ExecutionInfo {
  id: string; // UUID
  command: string;
  args: string[];
  owner: string; // client certificate CN
  status: ExecutionStatus;
  exitCode: number | null;
  /** signal name (e.g. SIGKILL) when a signal ended the command. */
  signal: string | null;
  /** why a job failed to start, or other terminal detail. */
  reason: string | null;
  startedAt: Date;
  endedAt: Date | null;
  limits: JobLimits; // effective limits
  usage: ResourceUsage;
  outputBytes: number;
  outputTruncated: boolean;
}

/** One piece of output, in the order it was written. */
export type OutputChunk =
  { kind: 'data'; stream: 'stdout' | 'stderr'; data: Buffer } | { kind: 'truncated' }; // the per-job cap was reached; nothing more will be kept

export interface StartOptions {
  owner: string;
  limits?: JobLimits;
}

/** How a reader follows a job's output. */
export interface OutputOptions {
  signal?: AbortSignal;
  /** bytes per read (default: the executor's); a function is asked before every read */
  readBytes?: number | (() => number);
  /** where read buffers come from (default: a new one per read) */
  buffers?: ReadBuffers;
}

/** A source of read buffers, so a reader can reuse the ones its consumer has finished with. */
export interface ReadBuffers {
  /** a buffer of exactly `size` bytes; the previous one taken is the reader's no more */
  take(size: number): Buffer;
}

/** A started job. */
export interface Command {
  readonly id: string;
  info(): ExecutionInfo;
  /** SIGTERM the command, then SIGKILL the whole job after stop_grace; resolves when it is gone. */
  stop(): Promise<ExecutionInfo>;
  /** resolves when the job has ended. */
  wait(): Promise<ExecutionInfo>;
  /**
   * All output from the first byte, then live until the job ends (or `signal` aborts).
   * `readBytes` bounds what one read takes (the reader's memory), asked again before each read.
   */
  output(opts?: OutputOptions): AsyncIterable<OutputChunk>;
}

/** Stable error codes of the executor, mapped to gRPC codes by the service. */
export type ExecutorErrorCode =
  'invalid_argument' | 'not_found' | 'resource_exhausted' | 'unavailable' | 'internal';

export class ExecutorError extends Error {
  readonly code: ExecutorErrorCode;
  constructor(code: ExecutorErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ExecutorError';
    this.code = code;
  }
}

/**
 * `s` quoted for an error message that may reach a gRPC status: at most `max` code points (a
 * surrogate pair is never split), lone surrogates and control characters escaped (grpc-js
 * percent-encodes details with encodeURI, which throws on a lone surrogate), "…" when cut.
 */
export function quoteShort(s: string, max = 64): string {
  const points = Array.from(s);
  const cut = points.length > max;
  // JSON.stringify escapes quotes, control characters and lone surrogates
  const quoted = JSON.stringify(points.slice(0, max).join(''));
  return cut ? `${quoted.slice(0, -1)}…"` : quoted;
}

/**
 * Why resolving a device failed, without the path (the message around it names the device
 * once): the errno code ("ENOENT") when there is one, else the resolver's last clause.
 */
export function deviceProblem(cause: unknown): string {
  const code = (cause as { cause?: { code?: unknown }; code?: unknown } | null) ?? {};
  const errno = typeof code.code === 'string' ? code.code : code.cause?.code;
  if (typeof errno === 'string') return errno;
  const message = cause instanceof Error ? cause.message : String(cause);
  return quoteShort(message.slice(message.lastIndexOf(': ') + 1).trim(), 200).slice(1, -1);
}
