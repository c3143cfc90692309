// The job executor library: starts commands in new PID, mount and network namespaces with a
// private /tmp, /var/tmp and /dev/shm (and, when cgroup v2 is usable, each in its own cgroup with
// limits), keeps their output on disk, stops them with SIGTERM then SIGKILL, and remembers them
// across restarts.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { blockDeviceNumber, Cgroup, delegatedWorkGroup } from '../../shared/cgroup/index.ts';
import type { Runner, Spawned } from '../../shared/exec/types.ts';
import type { Logger } from '../../shared/log/index.ts';
import type { PageCache } from '../../shared/native/pagecache.ts';
import { initPidOf, isolatedArgv, PRIVATE_TMP_BYTES } from '../../shared/ns/index.ts';
import { applyLimits, checkLimitsShape, resolveLimits } from './limits.ts';
import { OutputWriter, readOutput, type ReadOutputOptions } from './output.ts';
import { JobStore, markLost, type HostRef, type JobRecord } from './store.ts';
import {
  deviceProblem,
  ExecutorError,
  quoteShort,
  type Command,
  type ExecutionInfo,
  type IoLimit,
  type JobLimits,
  type OutputChunk,
  type StartOptions,
  type OutputOptions,
} from './types.ts';

/** The environment every job gets, whatever the daemon's own is. */
export const JOB_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LC_ALL: 'C',
});
/** cgroup controllers a job's limits use; all of them must be delegated for cgroup mode. */
export const JOB_CONTROLLERS = ['cpu', 'memory', 'io', 'pids'] as const;
export const DEFAULT_MAX_ARGS_BYTES = 128 * 1024;
const STATUS_FD = 3;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** how long pipes may stay open after the job's namespace is gone before we stop waiting. */
const PIPE_DRAIN_TIMEOUT_MS = 5_000;

/** True for a well-formed execution id (a UUID). */
export function isExecutionId(id: string): boolean {
  return UUID_RE.test(id);
}

export interface ExecutorOptions {
  runner: Runner;
  log: Logger;
  /** jobs live under `<stateDir>/jobs/<id>/` (meta.json, output). */
  stateDir: string;
  cgroup: {
    /** 'required': no usable cgroup v2 → create() throws; 'optional': namespaces only. */
    mode: 'required' | 'optional';
    /** cgroup2 mount (default /sys/fs/cgroup). */
    root?: string;
    /** an already delegated cgroup to work under instead of finding our own (tests, VM). */
    base?: Cgroup;
  };
  limits: {
    /** per-job limits when a start does not set them. */
    defaults: JobLimits;
    /** per-job maxima; a start asking for more is refused. */
    max: JobLimits;
    /** the outer cgroup holding all jobs. */
    total: JobLimits;
  };
  maxConcurrent: number;
  stopGraceMs: number;
  /** per-job cap of kept output bytes. */
  maxOutputBytes: number;
  /** cap of the command plus its arguments in bytes (default 128 KiB). */
  maxArgsBytes?: number;
  clock?: () => Date;
  /** absolute path of hostplane-nsinit. */
  nsinit: string;
  /** absolute path of unshare (must be in the runner's allowlist). */
  unshare: string;
  /** bytes each output reader reads at a time (default 256 KiB). */
  readBufferBytes?: number;
  /** "/dev/vda" → "MAJ:MIN" (default: shared/cgroup blockDeviceNumber). */
  resolveDevice?: (path: string) => Promise<string> | string;
  /** drops job output behind its writer from the page cache (see OutputWriter); null: keep it. */
  pageCache?: PageCache | null;
}

interface CgroupContext {
  root: string;
  jobs: Cgroup;
}

/** Runs jobs; see the file comment. Create with `Executor.create`. */
export class Executor {
  /** false when jobs run with namespaces only (no usable cgroup v2 controllers). */
  readonly cgroupsEnabled: boolean;
  /** why cgroups are off, for the daemon's warning and STATUS; null when they are on. */
  readonly cgroupProblem: string | null;

  readonly #o: ExecutorOptions;
  readonly #log: Logger;
  readonly #store: JobStore;
  readonly #cg: CgroupContext | null;
  readonly #jobs = new Map<string, Job>();
  readonly #clock: () => Date;
  readonly #defaults: JobLimits;
  readonly #max: JobLimits;
  #starting = 0;
  /** starts between their checks and their job being in #jobs; close() waits for them. */
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed = false;

  private constructor(
    o: ExecutorOptions,
    store: JobStore,
    cg: CgroupContext | null,
    problem: string | null,
    defaults: JobLimits,
    max: JobLimits,
  ) {
    this.#o = o;
    this.#log = o.log;
    this.#store = store;
    this.#cg = cg;
    this.cgroupsEnabled = cg !== null;
    this.cgroupProblem = problem;
    this.#clock = o.clock ?? (() => new Date());
    this.#defaults = defaults;
    this.#max = max;
  }

  /**
   * Prepares the state directory and (when usable) the outer jobs cgroup with the total limits,
   * marks jobs left running by a previous daemon as `lost` (killing what is left of them), and
   * loads every finished job.
   */
  static async create(o: ExecutorOptions): Promise<Executor> {
    const log = o.log.child({ component: 'executor' });
    const opts = { ...o, log };
    if (!Number.isSafeInteger(o.maxConcurrent) || o.maxConcurrent < 1) {
      throw new ExecutorError(
        'invalid_argument',
        `maxConcurrent must be ≥ 1, got ${o.maxConcurrent}`,
      );
    }
    for (const [name, v] of [
      ['maxOutputBytes', o.maxOutputBytes],
      ['stopGraceMs', o.stopGraceMs],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 0) {
        throw new ExecutorError('invalid_argument', `${name} must be a whole number ≥ 0, got ${v}`);
      }
    }
    checkLimitsShape(o.limits.defaults, 'default limits');
    checkLimitsShape(o.limits.max, 'maximum limits');
    checkLimitsShape(o.limits.total, 'total limits');
    const resolveDevice = o.resolveDevice ?? blockDeviceNumber;
    const defaults = await resolveIoDevices(o.limits.defaults, resolveDevice, 'default limits');
    const max = await resolveIoDevices(o.limits.max, resolveDevice, 'maximum limits');
    const total = await resolveIoDevices(o.limits.total, resolveDevice, 'total limits');
    // the defaults must themselves be allowed
    resolveLimits(undefined, defaults, max);

    const store = new JobStore(o.stateDir, log);
    await store.init();

    let cg: CgroupContext | null = null;
    let problem: string | null = null;
    try {
      cg = await setupCgroups(o, total);
    } catch (err) {
      problem = (err as Error).message;
      if (o.cgroup.mode === 'required') {
        throw new ExecutorError(
          'unavailable',
          `cgroup v2 is required but not usable: ${problem} (set [cgroup] require = false to run ` +
            'jobs with namespaces only, without resource limits)',
          { cause: err },
        );
      }
      log.warn(
        { reason: problem },
        'cgroup v2 not usable: jobs run with namespaces only, no limits',
      );
    }

    const ex = new Executor(opts, store, cg, problem, defaults, max);
    await ex.#recover();
    return ex;
  }

  /** Starts `command args` as a new job owned by `opts.owner`. */
  async start(command: string, args: readonly string[], opts: StartOptions): Promise<Command> {
    if (this.#closed) throw new ExecutorError('unavailable', 'the executor is shutting down');
    this.#checkCommand(command, args);
    if (typeof opts.owner !== 'string' || opts.owner === '') {
      throw new ExecutorError('invalid_argument', 'a job needs an owner');
    }
    const running = this.#runningCount() + this.#starting;
    if (running >= this.#o.maxConcurrent) {
      throw new ExecutorError(
        'resource_exhausted',
        `${running} jobs are running, the maximum is ${this.#o.maxConcurrent}`,
      );
    }
    this.#starting++;
    const starting = (async () => {
      const requested =
        opts.limits === undefined
          ? undefined
          : await resolveIoDevices(opts.limits, this.#resolveDevice, 'limits');
      const limits = resolveLimits(requested, this.#defaults, this.#max);
      return await this.#launch(command, [...args], opts.owner, limits);
    })();
    this.#inFlight.add(starting);
    try {
      return await starting;
    } finally {
      this.#inFlight.delete(starting);
      this.#starting--;
    }
  }

  /** A job by id (running or finished); with `owner`, only when that owner started it. */
  get(id: string, owner?: string): Command | undefined {
    const job = this.#jobs.get(id.toLowerCase());
    if (job === undefined) return undefined;
    if (owner !== undefined && job.owner !== owner) return undefined;
    return job;
  }

  /** Snapshots of all jobs (of `owner` when given), oldest first. */
  list(owner?: string): ExecutionInfo[] {
    const out: ExecutionInfo[] = [];
    for (const job of this.#jobs.values()) {
      if (owner === undefined || job.owner === owner) out.push(job.info());
    }
    return out;
  }

  /** Refuses new starts and waits for pending metadata writes; with stopJobs, stops every job. */
  async close(opts: { stopJobs?: boolean } = {}): Promise<void> {
    this.#closed = true;
    // a start past its #closed check either launched (its job is in #jobs then) or gave up
    await Promise.allSettled([...this.#inFlight]);
    if (opts.stopJobs === true) {
      await Promise.all([...this.#jobs.values()].map((j) => j.stop()));
    }
    await this.#store.flush();
  }

  get #resolveDevice(): (path: string) => Promise<string> | string {
    return this.#o.resolveDevice ?? blockDeviceNumber;
  }

  #runningCount(): number {
    let n = 0;
    for (const j of this.#jobs.values()) if (j.running) n++;
    return n;
  }

  #checkCommand(command: string, args: readonly string[]): void {
    if (typeof command !== 'string' || command.trim() === '') {
      throw new ExecutorError('invalid_argument', 'the command is empty');
    }
    const untrusted: unknown = args; // from the wire: check the shape the types promise
    if (!Array.isArray(untrusted) || untrusted.some((a: unknown) => typeof a !== 'string')) {
      throw new ExecutorError('invalid_argument', 'arguments must be strings');
    }
    if (command.includes('\0') || args.some((a) => a.includes('\0'))) {
      throw new ExecutorError('invalid_argument', 'the command or an argument contains a NUL byte');
    }
    const max = this.#o.maxArgsBytes ?? DEFAULT_MAX_ARGS_BYTES;
    let bytes = Buffer.byteLength(command) + 1;
    for (const a of args) bytes += Buffer.byteLength(a) + 1;
    if (bytes > max) {
      throw new ExecutorError(
        'invalid_argument',
        `the command and its arguments take ${bytes} bytes, the maximum is ${max}`,
      );
    }
  }

  async #launch(command: string, args: string[], owner: string, limits: JobLimits): Promise<Job> {
    const id = randomUUID();
    const store = this.#store;
    store.createJobDir(id);
    let cgroup: Cgroup | null = null;
    let writer: OutputWriter | null = null;
    let spawned: Spawned;
    try {
      if (this.#cg !== null) {
        cgroup = this.#cg.jobs.child(id);
        await cgroup.create();
        await applyLimits(cgroup, limits);
      }
      writer = OutputWriter.create(store.outputPath(id), {
        maxBytes: this.#o.maxOutputBytes,
        log: this.#log,
        pageCache: this.#o.pageCache ?? null,
      });
      // the awaits above may have let close() begin: a job started now would outlive the drain
      if (this.#closed) throw new ExecutorError('unavailable', 'the executor is shutting down');
      const argv = isolatedArgv({
        unshare: this.#o.unshare,
        init: this.#o.nsinit,
        pid: true,
        mount: true,
        net: true,
        ...(cgroup === null ? {} : { cgroupDir: cgroup.path }),
        // as systemd's PrivateTmp=: jobs of different clients share no scratch files, and
        // nothing a job leaves in /tmp or /dev/shm outlives it (or its memory.max)
        privateTmpBytes: PRIVATE_TMP_BYTES,
        statusFd: STATUS_FD,
        command,
        args,
      });
      spawned = this.#o.runner.spawn(argv, {
        env: JOB_ENV,
        cwd: '/',
        stdio: ['ignore', 'pipe', 'pipe'],
        extraPipes: 1,
      });
    } catch (err) {
      writer?.abandon();
      if (cgroup !== null) await cgroup.remove().catch(() => undefined);
      await store.removeJobDir(id);
      if (err instanceof ExecutorError) throw err;
      const code = /EINVAL|ERANGE/.test((err as Error).message) ? 'invalid_argument' : 'internal';
      throw new ExecutorError(code, `starting job ${command}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const info: ExecutionInfo = {
      id,
      command,
      args,
      owner,
      status: 'running',
      exitCode: null,
      signal: null,
      reason: null,
      startedAt: this.#clock(),
      endedAt: null,
      limits,
      usage: { cpuUsec: null, memoryPeakBytes: null },
      outputBytes: 0,
      outputTruncated: false,
    };
    const job = new Job({
      info,
      store,
      log: this.#log.child({ job: id }),
      clock: this.#clock,
      readBufferBytes: this.#o.readBufferBytes,
      live: { spawned, writer, cgroup, stopGraceMs: this.#o.stopGraceMs },
    });
    this.#jobs.set(id, job);
    this.#log.info({ job: id, owner, command, cgroup: cgroup?.rel ?? null }, 'job started');
    return job;
  }

  async #recover(): Promise<void> {
    const now = this.#clock();
    const records = await this.#store.loadAll();
    for (const rec of records) {
      let r = rec;
      if (rec.info.status === 'running') {
        r = markLost(rec, now);
        await this.#killLeftovers(rec.host);
        try {
          await this.#store.save(r);
        } catch (err) {
          this.#log.error({ job: rec.info.id, err: (err as Error).message }, 'saving lost job');
        }
        this.#log.warn({ job: rec.info.id }, 'job was running at the last shutdown: marked lost');
      }
      this.#jobs.set(
        r.info.id,
        new Job({
          info: r.info,
          store: this.#store,
          log: this.#log.child({ job: r.info.id }),
          clock: this.#clock,
          readBufferBytes: this.#o.readBufferBytes,
          live: null,
        }),
      );
    }
    // any job cgroup left (a crash between create and save, or a lost job) belongs to no job now
    if (this.#cg !== null) {
      let names: string[] = [];
      try {
        names = await this.#cg.jobs.children();
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'listing leftover job cgroups');
      }
      for (const name of names) {
        const cg = this.#cg.jobs.child(name);
        try {
          await cg.destroy();
          this.#log.info({ cgroup: cg.rel }, 'removed leftover job cgroup');
        } catch (err) {
          this.#log.error(
            { cgroup: cg.rel, err: (err as Error).message },
            'removing leftover cgroup',
          );
        }
      }
    }
  }

  // Without cgroups, the job's unshare process is found by pid and start time; killing it makes
  // the kernel kill its init (--kill-child), which takes the whole PID namespace down.
  async #killLeftovers(host: HostRef | null): Promise<void> {
    if (host === null) return;
    if (this.#cg !== null && host.cgroup !== null) {
      const cg = Cgroup.at(host.cgroup, { root: this.#cg.root });
      try {
        await cg.destroy();
      } catch (err) {
        this.#log.warn(
          { cgroup: host.cgroup, err: (err as Error).message },
          'removing lost cgroup',
        );
      }
    }
    if (host.startTime !== null && (await procStartTime(host.pid)) === host.startTime) {
      try {
        process.kill(host.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

async function setupCgroups(o: ExecutorOptions, total: JobLimits): Promise<CgroupContext> {
  const jobs = await delegatedWorkGroup({
    ...(o.cgroup.root === undefined ? {} : { root: o.cgroup.root }),
    ...(o.cgroup.base === undefined ? {} : { base: o.cgroup.base }),
    controllers: JOB_CONTROLLERS,
    name: 'jobs',
  });
  await applyLimits(jobs, total);
  return { root: jobs.root, jobs };
}

async function resolveIoDevices(
  limits: JobLimits,
  resolve: (path: string) => Promise<string> | string,
  where: string,
): Promise<JobLimits> {
  if (limits.io === undefined) return limits;
  const io: IoLimit[] = [];
  for (const l of limits.io) {
    if (typeof l.device !== 'string' || /^\d+:\d+$/.test(l.device)) {
      io.push(l);
      continue;
    }
    try {
      io.push({ ...l, device: await resolve(l.device) });
    } catch (cause) {
      throw new ExecutorError(
        'invalid_argument',
        `${where}: resolving block device ${quoteShort(l.device, 256)}: ${deviceProblem(cause)}`,
        { cause },
      );
    }
  }
  return { ...limits, io };
}

/** field 22 of /proc/<pid>/stat, or null when the process does not exist. */
async function procStartTime(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may contain spaces and parentheses: split after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

const SIGNAL_NAMES = new Map<number, string>(
  Object.entries(osConstants.signals).map(([name, n]) => [n, name]),
);

function signalName(n: number): string {
  return SIGNAL_NAMES.get(n) ?? `signal ${n}`;
}

/** What hostplane-nsinit reported on the status fd. */
type InitStatus =
  | { kind: 'exited'; code: number }
  | { kind: 'signaled'; signal: number }
  | { kind: 'failed'; reason: string }
  | null;

/** Parses the status fd text (the last recognised line wins). */
export function parseInitStatus(text: string): InitStatus {
  let out: InitStatus = null;
  for (const line of text.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^exited (\d+)$/.exec(line)) !== null) out = { kind: 'exited', code: Number(m[1]) };
    else if ((m = /^signaled (\d+)$/.exec(line)) !== null) {
      out = { kind: 'signaled', signal: Number(m[1]) };
    } else if ((m = /^failed (.*)$/.exec(line)) !== null) out = { kind: 'failed', reason: m[1]! };
  }
  return out;
}

interface LiveParts {
  spawned: Spawned;
  writer: OutputWriter;
  cgroup: Cgroup | null;
  stopGraceMs: number;
}

interface JobInit {
  info: ExecutionInfo;
  store: JobStore;
  log: Logger;
  clock: () => Date;
  readBufferBytes: number | undefined;
  /** null for a job loaded from disk (already ended). */
  live: LiveParts | null;
}

/**
 * Reads the init's status fd: `text` (up to `limit` characters) once it ends, and `ready`, true
 * as soon as the init reported "ready" (signals to it are no longer dropped), false when the fd
 * ended without it.
 */
function watchStatus(
  stream: Readable,
  limit: number,
): { text: Promise<string>; ready: Promise<boolean> } {
  let setReady: (ready: boolean) => void = () => undefined;
  const ready = new Promise<boolean>((resolve) => {
    setReady = resolve;
  });
  const text = new Promise<string>((resolve) => {
    let text = '';
    const end = (): void => {
      setReady(false);
      resolve(text);
    };
    stream.setEncoding('utf8');
    stream.on('data', (s: string) => {
      if (text.length < limit) text += s.slice(0, limit - text.length);
      if (/^ready$/m.test(text)) setReady(true);
    });
    stream.on('error', end);
    stream.on('close', end);
    stream.on('end', end);
  });
  return { text, ready };
}

function drained(stream: Readable): Promise<void> {
  return new Promise((resolve) => {
    if (stream.readableEnded || stream.destroyed) {
      resolve();
      return;
    }
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', () => {
      resolve();
    });
  });
}

/** One job: a Command for callers, with the monitoring of its process. */
class Job implements Command {
  readonly id: string;
  readonly owner: string;
  readonly #info: ExecutionInfo;
  readonly #store: JobStore;
  readonly #log: Logger;
  readonly #clock: () => Date;
  readonly #readBuffer: number | undefined;
  readonly #live: LiveParts | null;
  readonly #done: Promise<ExecutionInfo>;
  #host: HostRef | null = null;
  #stopRequested = false;
  #killSent = false;
  /** the job's unshare has exited: nothing is left to signal (and its PIDs may be reused). */
  #exited = false;
  #graceTimer: NodeJS.Timeout | null = null;
  #initPid: number | null = null;
  /** true once the init can take signals (see watchStatus); a stop before that waits for it. */
  #initReady: Promise<boolean> = Promise.resolve(false);
  #stderrHead = '';

  constructor(init: JobInit) {
    this.#info = init.info;
    this.id = init.info.id;
    this.owner = init.info.owner;
    this.#store = init.store;
    this.#log = init.log;
    this.#clock = init.clock;
    this.#readBuffer = init.readBufferBytes;
    this.#live = init.live;
    if (init.live === null) {
      this.#done = Promise.resolve(this.info());
    } else {
      this.#done = this.#monitor(init.live);
    }
  }

  get running(): boolean {
    return this.#info.status === 'running';
  }

  info(): ExecutionInfo {
    const i = this.#info;
    const w = this.#live?.writer;
    if (w !== undefined && i.status === 'running') {
      i.outputBytes = w.dataBytes;
      i.outputTruncated = w.truncated;
    }
    return structuredClone(i);
  }

  wait(): Promise<ExecutionInfo> {
    return this.#done;
  }

  stop(): Promise<ExecutionInfo> {
    const live = this.#live;
    if (live === null || !this.running || this.#stopRequested) return this.#done;
    this.#stopRequested = true;
    this.#log.info('stopping job: SIGTERM');
    this.#graceTimer = setTimeout(() => {
      void this.#escalate();
    }, live.stopGraceMs);
    void this.#sendTerm(live);
    return this.#done;
  }

  output(opts: OutputOptions = {}): AsyncIterable<OutputChunk> {
    const live = this.#live?.writer ?? null;
    const ro: ReadOutputOptions = {};
    if (opts.signal !== undefined) ro.signal = opts.signal;
    const bufferSize = opts.readBytes ?? this.#readBuffer;
    if (bufferSize !== undefined) ro.bufferSize = bufferSize;
    if (opts.buffers !== undefined) ro.buffers = opts.buffers;
    return readOutput(this.#store.outputPath(this.id), live, ro);
  }

  async #findInit(live: LiveParts): Promise<number | null> {
    if (this.#initPid !== null) return this.#initPid;
    try {
      this.#initPid = await initPidOf(live.spawned.pid);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'finding the job init');
    }
    return this.#initPid;
  }

  async #sendTerm(live: LiveParts): Promise<void> {
    // the kernel drops a signal to a namespace init that has not blocked or handled it yet: a
    // stop right after the start waits for the init's "ready" (false: it ended before that)
    if (!(await this.#initReady)) return;
    const pid = await this.#findInit(live);
    if (pid === null || this.#exited) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch (err) {
      this.#log.warn({ pid, err: (err as Error).message }, 'sending SIGTERM to the job init');
    }
  }

  async #escalate(): Promise<void> {
    const live = this.#live;
    if (live === null || this.#exited) return;
    this.#killSent = true;
    this.#log.info('stop grace over: SIGKILL');
    if (live.cgroup !== null) {
      try {
        await live.cgroup.kill();
      } catch (err) {
        this.#log.error({ err: (err as Error).message }, 'killing the job cgroup');
      }
    } else if (this.#initPid !== null) {
      try {
        process.kill(this.#initPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // unshare --kill-child: its death SIGKILLs the init, and the namespace dies with its init
    live.spawned.kill('SIGKILL');
  }

  #watchOutput(live: LiveParts): Promise<void> {
    const { spawned, writer } = live;
    const pipes: Readable[] = [];
    const attach = (stream: Readable | null, name: 'stdout' | 'stderr') => {
      if (stream === null) return;
      pipes.push(stream);
      stream.on('data', (b: Buffer) => {
        if (name === 'stderr' && this.#stderrHead.length < 512) {
          this.#stderrHead += b.subarray(0, 512).toString('utf8');
        }
        writer.append(name, b);
      });
    };
    attach(spawned.stdout, 'stdout');
    attach(spawned.stderr, 'stderr');
    // the disk (never a reader) is the only thing that may slow a job down
    writer.onPressure = (paused) => {
      for (const p of pipes) {
        if (paused) p.pause();
        else p.resume();
      }
    };
    return Promise.all(pipes.map(drained)).then(() => undefined);
  }

  async #monitor(live: LiveParts): Promise<ExecutionInfo> {
    const { spawned, writer, cgroup } = live;
    const outputDone = this.#watchOutput(live);
    const statusFd =
      spawned.extra[0] === undefined
        ? { text: Promise.resolve(''), ready: Promise.resolve(false) }
        : watchStatus(spawned.extra[0], 4096);
    this.#initReady = statusFd.ready;
    const statusText = statusFd.text;
    void this.#recordHost(live);

    const exit = await spawned.exited;
    this.#exited = true;
    if (this.#graceTimer !== null) clearTimeout(this.#graceTimer);
    // Everything in the namespace is gone once unshare has reaped the init; the pipes then end.
    // Guard anyway against a pipe held open elsewhere.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      outputDone,
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          this.#log.warn('output pipes still open after the job ended: closing them');
          spawned.stdout?.destroy();
          spawned.stderr?.destroy();
          resolve();
        }, PIPE_DRAIN_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    const status = parseInitStatus(await statusText);

    let oomKills = 0;
    const usage = { cpuUsec: null as number | null, memoryPeakBytes: null as number | null };
    if (cgroup !== null) {
      try {
        // whatever is left (nothing, normally) must not survive the job
        await cgroup.kill();
        oomKills = (await cgroup.memoryEvents()).oomKill;
        usage.cpuUsec = (await cgroup.cpuStat()).usageUsec;
        usage.memoryPeakBytes = await cgroup.memoryPeak();
      } catch (err) {
        this.#log.error({ err: (err as Error).message }, 'reading job cgroup usage');
      }
      try {
        await cgroup.remove();
      } catch (err) {
        this.#log.error({ err: (err as Error).message }, 'removing job cgroup');
      }
    }
    await writer.end();

    const i = this.#info;
    i.usage = usage;
    i.outputBytes = writer.dataBytes;
    i.outputTruncated = writer.truncated;
    i.endedAt = this.#clock();
    if (status?.kind === 'failed') {
      i.status = 'failed_to_start';
      i.exitCode = 127;
      // the init reports only strerror; say which command could not be run
      i.reason = `starting ${JSON.stringify(i.command)}: ${status.reason}`;
    } else if (oomKills > 0) {
      i.status = 'oom_killed';
      i.signal = 'SIGKILL';
      i.exitCode = status?.kind === 'exited' ? status.code : null;
      i.reason = 'the job exceeded its memory limit';
    } else if (this.#killSent && status?.kind !== 'exited') {
      i.status = 'killed';
      i.signal = 'SIGKILL';
      i.reason = 'killed after the stop grace period';
    } else if (status !== null) {
      i.status = this.#stopRequested ? 'stopped' : 'exited';
      if (status.kind === 'exited') i.exitCode = status.code;
      else i.signal = signalName(status.signal);
    } else if (this.#stopRequested || exit.signal !== null) {
      // the init died without a report: killed from outside, or stopped before it forked
      i.status = this.#stopRequested ? 'stopped' : 'killed';
      i.signal = exit.signal;
      i.reason = 'the job init ended without reporting a status';
    } else {
      // unshare or the init failed before the command ran (they say why on stderr)
      i.status = 'failed_to_start';
      i.exitCode = exit.code;
      i.reason = this.#stderrHead.trim().split('\n')[0] || `isolation setup exited ${exit.code}`;
    }
    this.#log.info(
      { status: i.status, exitCode: i.exitCode, signal: i.signal, outputBytes: i.outputBytes },
      'job ended',
    );
    await this.#store.save({ info: i, host: this.#host }).catch((err: unknown) => {
      this.#log.error({ err: (err as Error).message }, 'saving job');
    });
    return structuredClone(i);
  }

  async #recordHost(live: LiveParts): Promise<void> {
    this.#host = {
      pid: live.spawned.pid,
      startTime: await procStartTime(live.spawned.pid),
      cgroup: live.cgroup?.rel ?? null,
    };
    // the end may already have been saved (a very short job): don't overwrite it
    if (!this.running) return;
    const rec: JobRecord = { info: this.#info, host: this.#host };
    await this.#store.save(rec).catch((err: unknown) => {
      this.#log.error({ err: (err as Error).message }, 'saving job');
    });
  }
}

/** Where a job's files are, for operators and tests. */
export function jobPaths(
  stateDir: string,
  id: string,
): { dir: string; output: string; meta: string } {
  const dir = join(stateDir, 'jobs', id);
  return { dir, output: join(dir, 'output'), meta: join(dir, 'meta.json') };
}
