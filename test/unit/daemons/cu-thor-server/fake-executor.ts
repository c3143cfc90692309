// A stateful stand-in for the Executor, for tests of the gRPC layer: jobs whose output and end
// the test drives.
import { randomUUID } from 'node:crypto';
import type { ExecutorPort } from '../../../../daemons/cu-thor-server/service.ts';
import {
  ExecutorError,
  type Command,
  type ExecutionInfo,
  type OutputChunk,
  type OutputOptions,
  type StartOptions,
} from '../../../../daemons/cu-thor-server/types.ts';

/** A job whose output and end the test drives. */
export class FakeCommand implements Command {
  readonly id = randomUUID();
  readonly chunks: OutputChunk[] = [];
  readonly #info: ExecutionInfo;
  #wake: (() => void)[] = [];
  /** readers currently iterating, and how many were aborted. */
  readers = 0;
  abortedReaders = 0;
  constructor(command: string, args: string[], opts: StartOptions) {
    this.#info = {
      id: this.id,
      command,
      args,
      owner: opts.owner,
      status: 'running',
      exitCode: null,
      signal: null,
      reason: null,
      startedAt: new Date(),
      endedAt: null,
      limits: opts.limits ?? {},
      usage: { cpuUsec: null, memoryPeakBytes: null },
      outputBytes: 0,
      outputTruncated: false,
    };
  }
  info(): ExecutionInfo {
    return { ...this.#info };
  }
  emit(chunk: OutputChunk): void {
    this.chunks.push(chunk);
    if (chunk.kind === 'data') this.#info.outputBytes += chunk.data.length;
    else this.#info.outputTruncated = true;
    this.#notify();
  }
  finish(status: ExecutionInfo['status'], exitCode: number | null): void {
    Object.assign(this.#info, { status, exitCode, endedAt: new Date() });
    this.#notify();
  }
  #notify(): void {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }
  stop(): Promise<ExecutionInfo> {
    if (this.#info.status === 'running') this.finish('stopped', null);
    return Promise.resolve(this.info());
  }
  wait(): Promise<ExecutionInfo> {
    return Promise.resolve(this.info());
  }
  /** what each reader's readBytes said when it started, for the service's sizing */
  readonly readBytesSeen: number[] = [];
  async *output(opts: OutputOptions = {}): AsyncIterable<OutputChunk> {
    this.readers++;
    const rb = opts.readBytes;
    if (rb !== undefined) this.readBytesSeen.push(typeof rb === 'function' ? rb() : rb);
    try {
      let at = 0;
      for (;;) {
        while (at < this.chunks.length) yield this.chunks[at++]!;
        if (this.#info.status !== 'running') return;
        if (opts.signal?.aborted === true) {
          this.abortedReaders++;
          return;
        }
        await new Promise<void>((resolve) => {
          this.#wake.push(resolve);
          opts.signal?.addEventListener('abort', () => {
            resolve();
          });
        });
      }
    } finally {
      this.readers--;
    }
  }
}

export class FakeExecutor implements ExecutorPort {
  readonly jobs = new Map<string, FakeCommand>();
  maxConcurrent = 100;
  start(command: string, args: string[], opts: StartOptions): Promise<Command> {
    if ((opts.limits?.cpuPercent ?? 0) > 400) {
      return Promise.reject(
        new ExecutorError(
          'invalid_argument',
          'cpuPercent 500 is above the configured maximum of 400',
        ),
      );
    }
    if (this.jobs.size >= this.maxConcurrent) {
      return Promise.reject(new ExecutorError('resource_exhausted', 'too many jobs'));
    }
    const c = new FakeCommand(command, args, opts);
    this.jobs.set(c.id, c);
    return Promise.resolve(c);
  }
  get(id: string, owner: string): Command | undefined {
    const c = this.jobs.get(id);
    return c?.info().owner === owner ? c : undefined;
  }
  list(owner: string): ExecutionInfo[] {
    return [...this.jobs.values()].map((c) => c.info()).filter((i) => i.owner === owner);
  }
}
