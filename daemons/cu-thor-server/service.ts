// The JobExecutor gRPC service: a thin layer over the Executor. It checks what the wire can get
// wrong (ids, sizes, numbers), takes the owner from the client certificate's CN, answers another
// owner's id exactly like an unknown one, and maps ExecutorError codes to gRPC status codes.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../shared/log/index.ts';
import type {
  ExecuteCommandRequest,
  ExecutionIn,
  ExecutionStatus as WireStatus,
  GetOutStreamResponseIn,
  JobExecutorHandlers,
  Limits,
  ListAllExecutionsRequest,
} from '../../shared/proto/jobexec.ts';
import { loadJobExec } from '../../shared/proto/index.ts';
import { decodePageToken, listPage, pageSize } from './list.ts';
import { ReusedReadBuffers } from './output.ts';
import {
  ExecutorError,
  quoteShort,
  type Command,
  type ExecutionInfo,
  type ExecutorErrorCode,
  type JobLimits,
  type StartOptions,
} from './types.ts';

/** What the service needs of the Executor. */
export interface ExecutorPort {
  start(command: string, args: string[], opts: StartOptions): Promise<Command>;
  /** the command with that id started by `owner`; undefined when unknown or someone else's. */
  get(id: string, owner: string): Command | undefined;
  /** every execution `owner` started (running, ended, lost), oldest first. */
  list(owner: string): ExecutionInfo[];
}

/** Bounds on a request, checked before the executor sees it. */
export const REQUEST_BOUNDS = {
  /** bytes of the command name/path (PATH_MAX). */
  commandBytes: 4096,
  argsCount: 4096,
  /** the kernel's MAX_ARG_STRLEN. */
  argBytes: 128 * 1024,
  /** command and args together (the executor's own cap): well below ARG_MAX. */
  totalBytes: 128 * 1024,
  /** entries of limits.io (each is resolved with a stat before the job starts). */
  ioCount: 64,
  /** bytes of one limits.io device path (PATH_MAX). */
  ioDeviceBytes: 4096,
} as const;

/**
 * Output bytes one GetOutStream may have handed to grpc-js but not yet seen sent. grpc-js holds
 * them twice (our message, then its serialized frame), so this is a quarter of the memory bound.
 */
export const MAX_PENDING_BYTES = 256 * 1024;

/**
 * Bytes per output-file read of one stream, by how many streams are open: large while few are
 * (fewer, bigger messages: throughput), smaller as more open, so that 100 readers stay within
 * the server's memory budget. Asked again before every read.
 */
export function streamReadBytes(openStreams: number): number {
  if (openStreams <= 4) return 256 * 1024;
  if (openStreams <= 16) return 128 * 1024;
  if (openStreams <= 48) return 64 * 1024;
  return 32 * 1024;
}

/** The unsent bytes one stream may have queued, by how many streams are open. */
export function streamPendingBytes(openStreams: number): number {
  return Math.min(MAX_PENDING_BYTES, 2 * streamReadBytes(openStreams));
}

/** Output data bytes per stream message: small enough for any client's default 4 MiB cap. */
export const MAX_MESSAGE_DATA = 1024 * 1024;

/**
 * Server channel options. What bounds an output stream is the CLIENT's receive window (cu-thor's
 * CHANNEL_OPTIONS: 16 MiB instead of 64 KiB, ~110 → 300+ MB/s); grpc-js 1.14's server reads
 * flow_control_window for nothing (checked), it is set for the versions that do. Messages we send
 * stay below MAX_MESSAGE_DATA, and requests are small.
 */
export const SERVER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
  'grpc.max_send_message_length': 4 * MAX_MESSAGE_DATA,
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_timeout_ms': 20_000,
  // calls one HTTP/2 connection may have open at once (output streams and unary calls)
  'grpc.max_concurrent_streams': 128,
};

/** Default caps of open GetOutStream calls (config max_output_streams[_per_client]). */
export const DEFAULT_MAX_STREAMS = 256;
export const DEFAULT_MAX_STREAMS_PER_OWNER = 128;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An error with a gRPC status, as handlers pass it to callbacks. */
export class StatusError extends Error {
  readonly code: grpc.status;
  constructor(code: grpc.status, message: string) {
    super(message);
    this.name = 'StatusError';
    this.code = code;
  }
  toServiceError(): Partial<grpc.StatusObject> {
    return { code: this.code, details: this.message };
  }
}

const EXECUTOR_CODES: Record<ExecutorErrorCode, grpc.status> = {
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  not_found: grpc.status.NOT_FOUND,
  resource_exhausted: grpc.status.RESOURCE_EXHAUSTED,
  unavailable: grpc.status.UNAVAILABLE,
  internal: grpc.status.INTERNAL,
};

const invalid = (message: string): StatusError =>
  new StatusError(grpc.status.INVALID_ARGUMENT, message);

/** The CN of the verified client certificate, or UNAUTHENTICATED. */
export function peerCommonName(
  call: Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getAuthContext'>,
): string {
  const cert = call.getAuthContext().sslPeerCertificate;
  const cn = cert?.subject.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (name === undefined || name === '') {
    throw new StatusError(grpc.status.UNAUTHENTICATED, 'client certificate with a CN required');
  }
  return name;
}

/** Checks a command line against REQUEST_BOUNDS. */
export function checkCommandLine(command: string, args: readonly string[]): void {
  if (command.trim() === '') throw invalid('command is empty');
  const commandBytes = Buffer.byteLength(command);
  if (commandBytes > REQUEST_BOUNDS.commandBytes) {
    throw invalid(`command is ${commandBytes} bytes, more than ${REQUEST_BOUNDS.commandBytes}`);
  }
  if (command.includes('\0')) throw invalid('command contains a NUL byte');
  if (args.length > REQUEST_BOUNDS.argsCount) {
    throw invalid(`${args.length} arguments, more than ${REQUEST_BOUNDS.argsCount}`);
  }
  // counted as exec(2) does: each string with its NUL terminator.
  let total = commandBytes + 1;
  for (const [i, arg] of args.entries()) {
    const n = Buffer.byteLength(arg);
    if (n > REQUEST_BOUNDS.argBytes) {
      throw invalid(`argument ${i} is ${n} bytes, more than ${REQUEST_BOUNDS.argBytes}`);
    }
    if (arg.includes('\0')) throw invalid(`argument ${i} contains a NUL byte`);
    total += n + 1;
  }
  if (total > REQUEST_BOUNDS.totalBytes) {
    throw invalid(`command line is ${total} bytes, more than ${REQUEST_BOUNDS.totalBytes}`);
  }
}

function wireNumber(what: string, v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw invalid(`limits.${what} ${v} is out of range`);
  if (n <= 0) throw invalid(`limits.${what} must be positive, got ${v}`);
  return n;
}

/** The limits of a request as the executor takes them (absent = the server's default). */
export function limitsFromWire(l: Limits | null): JobLimits | undefined {
  if (l === null) return undefined;
  const out: JobLimits = {};
  const cpuPercent = wireNumber('cpu_percent', l.cpuPercent);
  const memoryMaxBytes = wireNumber('memory_max_bytes', l.memoryMaxBytes);
  const memoryHighBytes = wireNumber('memory_high_bytes', l.memoryHighBytes);
  const pidsMax = wireNumber('pids_max', l.pidsMax);
  if (cpuPercent !== undefined) out.cpuPercent = cpuPercent;
  if (memoryMaxBytes !== undefined) out.memoryMaxBytes = memoryMaxBytes;
  if (memoryHighBytes !== undefined) out.memoryHighBytes = memoryHighBytes;
  if (pidsMax !== undefined) out.pidsMax = pidsMax;
  if (l.io.length > REQUEST_BOUNDS.ioCount) {
    throw invalid(`limits.io has ${l.io.length} entries, more than ${REQUEST_BOUNDS.ioCount}`);
  }
  if (l.io.length > 0) {
    out.io = l.io.map((d, i) => {
      if (d.device === '') throw invalid(`limits.io[${i}].device is empty`);
      const deviceBytes = Buffer.byteLength(d.device);
      if (deviceBytes > REQUEST_BOUNDS.ioDeviceBytes) {
        throw invalid(
          `limits.io[${i}].device is ${deviceBytes} bytes, more than ${REQUEST_BOUNDS.ioDeviceBytes}`,
        );
      }
      const rbps = wireNumber(`io[${i}].rbps`, d.rbps);
      const wbps = wireNumber(`io[${i}].wbps`, d.wbps);
      return {
        device: d.device,
        ...(rbps === undefined ? {} : { rbps }),
        ...(wbps === undefined ? {} : { wbps }),
      };
    });
  }
  return out;
}

const WIRE_STATUS: Record<ExecutionInfo['status'], WireStatus> = {
  running: 'EXECUTION_STATUS_RUNNING',
  exited: 'EXECUTION_STATUS_EXITED',
  stopped: 'EXECUTION_STATUS_STOPPED',
  killed: 'EXECUTION_STATUS_KILLED',
  oom_killed: 'EXECUTION_STATUS_OOM_KILLED',
  failed_to_start: 'EXECUTION_STATUS_FAILED_TO_START',
  lost: 'EXECUTION_STATUS_LOST',
};

function timestamp(d: Date): { seconds: string; nanos: number } {
  const ms = d.getTime();
  return { seconds: String(Math.floor(ms / 1000)), nanos: (((ms % 1000) + 1000) % 1000) * 1e6 };
}

/** An execution's metadata as the wire carries it. */
export function executionToWire(info: ExecutionInfo): ExecutionIn {
  const l = info.limits;
  return {
    id: info.id,
    command: info.command,
    args: info.args,
    owner: info.owner,
    status: WIRE_STATUS[info.status],
    ...(info.exitCode === null ? {} : { exitCode: info.exitCode }),
    signal: info.signal ?? '',
    reason: info.reason ?? '',
    startedAt: timestamp(info.startedAt),
    endedAt: info.endedAt === null ? null : timestamp(info.endedAt),
    limits: {
      ...(l.cpuPercent === undefined ? {} : { cpuPercent: l.cpuPercent }),
      ...(l.memoryMaxBytes === undefined ? {} : { memoryMaxBytes: l.memoryMaxBytes }),
      ...(l.memoryHighBytes === undefined ? {} : { memoryHighBytes: l.memoryHighBytes }),
      ...(l.pidsMax === undefined ? {} : { pidsMax: l.pidsMax }),
      io: (l.io ?? []).map((d) => ({
        device: d.device,
        ...(d.rbps === undefined ? {} : { rbps: d.rbps }),
        ...(d.wbps === undefined ? {} : { wbps: d.wbps }),
      })),
    },
    usage: {
      ...(info.usage.cpuUsec === null ? {} : { cpuUsec: info.usage.cpuUsec }),
      ...(info.usage.memoryPeakBytes === null
        ? {}
        : { memoryPeakBytes: info.usage.memoryPeakBytes }),
    },
    outputBytes: info.outputBytes,
    outputTruncated: info.outputTruncated,
  };
}

/** Any failure as a gRPC status; unexpected ones are logged and answered INTERNAL. */
export function toStatus(err: unknown, log: Logger, what: string): Partial<grpc.StatusObject> {
  if (err instanceof StatusError) return err.toServiceError();
  if (err instanceof ExecutorError) {
    if (err.code === 'internal') log.error({ err }, what);
    return { code: EXECUTOR_CODES[err.code], details: err.message };
  }
  log.error({ err }, what);
  return { code: grpc.status.INTERNAL, details: `${what}: internal error` };
}

export interface ServiceDeps {
  executor: ExecutorPort;
  log: Logger;
  /** open GetOutStream calls of all owners together; default DEFAULT_MAX_STREAMS. */
  maxStreams?: number;
  /** open GetOutStream calls of one owner; default DEFAULT_MAX_STREAMS_PER_OWNER. */
  maxStreamsPerOwner?: number;
  /** bytes one execution adds to a ListAllExecutions answer; default: protobuf-encoded. */
  executionBytes?: (e: ExecutionIn) => number;
}

/** Bytes `e` adds to a ListAllExecutions answer (its field tag and length included). */
export function encodedExecutionBytes(): (e: ExecutionIn) => number {
  const serialize = loadJobExec().hostplane.jobexec.v1.JobExecutor.service.ListAllExecutions
    .responseSerialize as (res: { executions: ExecutionIn[] }) => Buffer;
  // an answer of this one entry and no token is exactly the entry's share of a page
  return (e) => serialize({ executions: [e] }).length;
}

/** The JobExecutor service plus `close()`, which ends every open output stream (drain). */
export interface JobExecutorService {
  handlers: JobExecutorHandlers;
  /** ends every open GetOutStream with UNAVAILABLE; new ones are refused from now on. */
  close(): void;
  /** open GetOutStream calls (for tests and STATUS). */
  readonly openStreams: number;
}

export function createJobExecutorService({
  executor,
  log,
  maxStreams = DEFAULT_MAX_STREAMS,
  maxStreamsPerOwner = DEFAULT_MAX_STREAMS_PER_OWNER,
  executionBytes = encodedExecutionBytes(),
}: ServiceDeps): JobExecutorService {
  const streams = new Set<AbortController>();
  const streamsOf = new Map<string, number>();
  let closing = false;

  /** Counts a new stream of `owner`, or RESOURCE_EXHAUSTED past a cap; returns its release. */
  const admitStream = (owner: string, abort: AbortController): (() => void) => {
    const mine = streamsOf.get(owner) ?? 0;
    if (mine >= maxStreamsPerOwner) {
      throw new StatusError(
        grpc.status.RESOURCE_EXHAUSTED,
        `${mine} output streams of ${owner} are open, the maximum per client is ${maxStreamsPerOwner}`,
      );
    }
    if (streams.size >= maxStreams) {
      throw new StatusError(
        grpc.status.RESOURCE_EXHAUSTED,
        `${streams.size} output streams are open, the server's maximum is ${maxStreams}`,
      );
    }
    streams.add(abort);
    streamsOf.set(owner, mine + 1);
    return () => {
      streams.delete(abort);
      const n = (streamsOf.get(owner) ?? 1) - 1;
      if (n === 0) streamsOf.delete(owner);
      else streamsOf.set(owner, n);
    };
  };

  /** The caller's command with that id; another owner's id is NOT_FOUND, like an unknown one. */
  const owned = (id: string, owner: string): Command => {
    if (!UUID.test(id)) throw invalid(`execution id ${quoteShort(id)} is not a UUID`);
    const cmd = executor.get(id.toLowerCase(), owner);
    if (cmd?.info().owner !== owner) {
      throw new StatusError(grpc.status.NOT_FOUND, `execution ${id} not found`);
    }
    return cmd;
  };

  /** Wraps a unary handler: owner from the certificate, errors as statuses. */
  const unary =
    <Req, Res>(name: string, fn: (req: Req, owner: string) => Promise<Res>) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>): void => {
      // grpc-js may throw while sending (encodeURI of the details, serializing the answer):
      // answered with a plain INTERNAL status instead, never an unhandled rejection
      const answer = (err: Partial<grpc.StatusObject> | null, res?: Res): void => {
        try {
          callback(err, res);
        } catch (sendErr) {
          log.error({ err: sendErr }, `${name}: sending the answer`);
          try {
            callback({ code: grpc.status.INTERNAL, details: `${name}: internal error` });
          } catch {
            // nothing more to try: the call is left to the client's deadline
          }
        }
      };
      let owner: string;
      try {
        owner = peerCommonName(call);
      } catch (err) {
        answer(toStatus(err, log, name));
        return;
      }
      // a synchronous throw inside fn becomes a rejection too
      Promise.resolve()
        .then(() => fn(call.request, owner))
        .then(
          (res) => {
            answer(null, res);
          },
          (err: unknown) => {
            answer(toStatus(err, log, `${name} for ${owner}`));
          },
        );
    };

  const handlers: JobExecutorHandlers = {
    ExecuteCommand: unary('ExecuteCommand', async (req: ExecuteCommandRequest, owner) => {
      checkCommandLine(req.command, req.args);
      const limits = limitsFromWire(req.limits);
      const cmd = await executor.start(req.command, req.args, {
        owner,
        ...(limits === undefined ? {} : { limits }),
      });
      const info = cmd.info();
      log.info(
        { id: cmd.id, owner, command: req.command, status: info.status },
        'execution started',
      );
      return { id: cmd.id, execution: executionToWire(info) };
    }),
    StopExecution: unary('StopExecution', async (req: { id: string }, owner) => {
      const cmd = owned(req.id, owner);
      log.info({ id: cmd.id, owner }, 'stopping execution');
      return { execution: executionToWire(await cmd.stop()) };
    }),
    GetExecution: unary('GetExecution', (req: { id: string }, owner) =>
      Promise.resolve({ execution: executionToWire(owned(req.id, owner).info()) }),
    ),
    ListAllExecutions: unary('ListAllExecutions', (req: ListAllExecutionsRequest, owner) => {
      const token = req.pageToken;
      const after = token === '' ? null : decodePageToken(token);
      if (after === null && token !== '') {
        throw invalid(`page_token ${quoteShort(token)} was not handed out by this server`);
      }
      const infos = executor.list(owner).filter((i) => i.owner === owner);
      return Promise.resolve(
        listPage(infos, after, pageSize(req.pageSize), executionToWire, executionBytes),
      );
    }),
    GetOutStream: (call) => {
      void streamOutput(call);
    },
  };

  async function streamOutput(
    call: grpc.ServerWritableStream<{ id: string }, GetOutStreamResponseIn>,
  ): Promise<void> {
    const abort = new AbortController();
    const state = { cancelled: false };
    // a function, so checks after an await are not narrowed away by the one before it.
    const stopped = (): boolean => abort.signal.aborted;
    // grpc-js queues up to 16 messages per call before write() says stop; bound it in bytes
    // instead (streamPendingBytes), so 100 slow readers cannot pile up gigabytes in the server.
    const queue = { bytes: 0, wake: null as (() => void) | null };
    abort.signal.addEventListener('abort', () => queue.wake?.(), { once: true });
    // read buffers are reused once grpc-js has sent what was cut from them (wire.ts encodes the
    // message into a scratch buffer and grpc-js copies it into its frame)
    const buffers = new ReusedReadBuffers();
    const send = async (msg: GetOutStreamResponseIn, data: Buffer | null): Promise<void> => {
      const bytes = data?.length ?? 0;
      queue.bytes += bytes;
      if (data !== null) buffers.hold(data);
      call.write(msg, () => {
        if (data !== null) buffers.release(data);
        queue.bytes -= bytes;
        queue.wake?.();
      });
      while (queue.bytes > streamPendingBytes(streams.size) && !stopped()) {
        await new Promise<void>((resolve) => {
          queue.wake = resolve;
        });
        queue.wake = null;
      }
    };
    const onCancel = (): void => {
      state.cancelled = true;
      abort.abort();
    };
    let owner = '?';
    let release = (): void => undefined;
    try {
      if (closing) throw new StatusError(grpc.status.UNAVAILABLE, 'server is shutting down');
      owner = peerCommonName(call);
      const cmd = owned(call.request.id, owner);
      release = admitStream(owner, abort);
      call.once('cancelled', onCancel);
      const readBytes = (): number => streamReadBytes(streams.size);
      for await (const chunk of cmd.output({ signal: abort.signal, readBytes, buffers })) {
        if (stopped()) break;
        if (chunk.kind === 'truncated') {
          await send({ truncated: {} }, null);
          continue;
        }
        const stream = chunk.stream === 'stdout' ? 'STREAM_STDOUT' : 'STREAM_STDERR';
        for (let at = 0; at < chunk.data.length; at += MAX_MESSAGE_DATA) {
          const data = chunk.data.subarray(at, at + MAX_MESSAGE_DATA);
          // a slow reader pauses only its own file reader: the job writes to disk regardless.
          await send({ data: { stream, data } }, data);
          if (stopped()) break;
        }
      }
      if (state.cancelled) return;
      if (abort.signal.aborted) {
        fail(call, { code: grpc.status.UNAVAILABLE, details: 'server is shutting down' }, log);
        return;
      }
      call.end();
    } catch (err) {
      if (state.cancelled) return;
      fail(call, toStatus(err, log, `GetOutStream for ${owner}`), log);
    } finally {
      release();
      call.off('cancelled', onCancel);
    }
  }

  return {
    handlers,
    close() {
      closing = true;
      for (const s of streams) s.abort();
    },
    get openStreams() {
      return streams.size;
    },
  };
}

/**
 * Ends a server stream with an error status (grpc-js sends the status on 'error'). Never throws:
 * a status grpc-js cannot send is replaced by a plain INTERNAL one.
 */
function fail(call: NodeJS.EventEmitter, status: Partial<grpc.StatusObject>, log: Logger): void {
  try {
    call.emit('error', status);
  } catch (err) {
    log.error({ err }, 'GetOutStream: sending the status');
    try {
      call.emit('error', { code: grpc.status.INTERNAL, details: 'GetOutStream: internal error' });
    } catch {
      // nothing more to try: the client's deadline ends the call
    }
  }
}
