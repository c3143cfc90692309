import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { nodeCgroupFs, type CgroupFs } from './fs.ts';
import {
  formatCpuMax,
  formatIoMax,
  formatLimit,
  isPopulated,
  parseCpuStat,
  parseMemoryEvents,
  parseNames,
  parseNumber,
  parsePids,
  parseProcCgroup,
  type CpuStat,
  type IoLimit,
  type MemoryEvents,
} from './format.ts';

/** Where the unified hierarchy is mounted on a systemd host. */
export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';

export interface CgroupOptions {
  root?: string;
  fs?: CgroupFs;
  /** sends a signal to a pid; only used by `kill()` on kernels without cgroup.kill. */
  killProcess?: (pid: number, signal: NodeJS.Signals) => void;
}

/** A failed cgroupfs operation; `code` is the errno name ("ENOENT", "EBUSY", ...) when known. */
export class CgroupError extends Error {
  readonly code: string | undefined;
  readonly path: string;
  constructor(message: string, path: string, code: string | undefined, cause: unknown) {
    super(message, { cause });
    this.name = 'CgroupError';
    this.path = path;
    this.code = code;
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

// What an errno usually means on cgroupfs, so the operator knows where to look.
const HINTS: Record<string, string> = {
  ENOENT: 'no such file (controller not enabled in the parent, or cgroup gone)',
  EINVAL: 'invalid argument',
  EBUSY: 'busy (processes or child cgroups still inside, or no-internal-processes rule)',
  EOPNOTSUPP: 'not supported (controller or threaded mode)',
  EACCES: 'permission denied (not a delegated subtree?)',
  EPERM: 'operation not permitted',
  ESRCH: 'no such process',
  ENOTEMPTY: 'not empty',
};

function wrap(action: string, path: string, err: unknown): CgroupError {
  const code = errnoCode(err);
  const why =
    code === undefined
      ? err instanceof Error
        ? err.message
        : String(err)
      : `${code} (${HINTS[code] ?? 'system error'})`;
  return new CgroupError(`${action}: ${why}`, path, code, err);
}

/** Validates one cgroup name: a single path segment that cannot escape its parent. */
export function checkCgroupName(name: string): string {
  if (
    name === '' ||
    name === '.' ||
    name === '..' ||
    name.includes('/') ||
    name.includes('\0') ||
    name.includes('\n')
  ) {
    throw new RangeError(`invalid cgroup name ${JSON.stringify(name)}`);
  }
  return name;
}

function normalizeRel(rel: string): string {
  const segments = rel.split('/').filter((s) => s !== '');
  for (const s of segments) checkCgroupName(s);
  return '/' + segments.join('/');
}

/** A cgroup v2 directory below an injectable root; every path stays inside that root. */
export class Cgroup {
  readonly root: string;
  /** path relative to the root, "/" for the root itself, else "/a/b". */
  readonly rel: string;
  /** absolute path: root + rel. */
  readonly path: string;
  readonly #fs: CgroupFs;
  readonly #opts: CgroupOptions;

  private constructor(rel: string, opts: CgroupOptions) {
    this.root = posix.resolve(opts.root ?? DEFAULT_CGROUP_ROOT);
    this.rel = normalizeRel(rel);
    this.path = this.rel === '/' ? this.root : this.root + this.rel;
    this.#fs = opts.fs ?? nodeCgroupFs;
    this.#opts = opts;
  }

  /** The cgroup at `rel` ("/system.slice/x.service") below the root. */
  static at(rel: string, opts: CgroupOptions = {}): Cgroup {
    return new Cgroup(rel, opts);
  }

  /** The cgroup this process is in, from /proc/self/cgroup (`procSelfCgroup` is that file's path). */
  static async self(opts: CgroupOptions & { procSelfCgroup?: string } = {}): Promise<Cgroup> {
    const file = opts.procSelfCgroup ?? '/proc/self/cgroup';
    const fs = opts.fs ?? nodeCgroupFs;
    let text: string;
    try {
      text = await fs.readFile(file);
    } catch (err) {
      throw wrap(`reading ${file}`, file, err);
    }
    let rel: string;
    try {
      rel = parseProcCgroup(text);
    } catch (err) {
      throw new CgroupError(
        `finding own cgroup from ${file}: ${(err as Error).message}`,
        file,
        undefined,
        err,
      );
    }
    return new Cgroup(rel, opts);
  }

  /** The child cgroup `name` (a single segment). */
  child(name: string): Cgroup {
    return new Cgroup(posix.join(this.rel, checkCgroupName(name)), this.#opts);
  }

  /** The parent cgroup, or null at the root. */
  parent(): Cgroup | null {
    return this.rel === '/' ? null : new Cgroup(posix.dirname(this.rel), this.#opts);
  }

  file(name: string): string {
    return posix.join(this.path, checkCgroupName(name));
  }

  async read(name: string): Promise<string> {
    const p = this.file(name);
    try {
      return await this.#fs.readFile(p);
    } catch (err) {
      throw wrap(`reading ${p}`, p, err);
    }
  }

  async write(name: string, data: string): Promise<void> {
    const p = this.file(name);
    try {
      await this.#fs.writeFile(p, data);
    } catch (err) {
      throw wrap(`writing ${JSON.stringify(data)} to ${p}`, p, err);
    }
  }

  /** Creates the cgroup (and missing parents); no error when it exists. */
  async create(): Promise<void> {
    try {
      await this.#fs.mkdir(this.path);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return;
      throw wrap(`creating cgroup ${this.path}`, this.path, err);
    }
  }

  async exists(): Promise<boolean> {
    return this.#fs.exists(this.path);
  }

  /** Controllers available here (cgroup.controllers). */
  async controllers(): Promise<string[]> {
    return parseNames(await this.read('cgroup.controllers'));
  }

  /** Controllers enabled for the children (cgroup.subtree_control). */
  async subtreeControllers(): Promise<string[]> {
    return parseNames(await this.read('cgroup.subtree_control'));
  }

  /** Enables controllers for the children; this cgroup must have no processes of its own. */
  async enableControllers(names: string[]): Promise<void> {
    if (names.length === 0) return;
    for (const n of names) checkCgroupName(n);
    await this.write('cgroup.subtree_control', names.map((n) => `+${n}`).join(' '));
  }

  /** Moves a process (all its threads) into this cgroup. */
  async moveProcess(pid: number): Promise<void> {
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new RangeError(`invalid pid ${pid}`);
    await this.write('cgroup.procs', String(pid));
  }

  /** Processes directly in this cgroup (not in its children). */
  async procs(): Promise<number[]> {
    return parsePids(await this.read('cgroup.procs'));
  }

  /** Whether this cgroup or a descendant still has processes (cgroup.events "populated"). */
  async populated(): Promise<boolean> {
    return isPopulated(await this.read('cgroup.events'));
  }

  /** Names of the child cgroups (needs a CgroupFs with readdir). */
  async children(): Promise<string[]> {
    const readdir = this.#fs.readdir?.bind(this.#fs);
    if (readdir === undefined) return [];
    try {
      return (await readdir(this.path)).sort();
    } catch (err) {
      throw wrap(`listing child cgroups of ${this.path}`, this.path, err);
    }
  }

  setCpuMax(quotaUs: number | null, periodUs?: number): Promise<void> {
    return this.write('cpu.max', formatCpuMax(quotaUs, periodUs));
  }

  setCpuWeight(weight: number): Promise<void> {
    if (!Number.isSafeInteger(weight) || weight < 1 || weight > 10_000) {
      throw new RangeError(`cpu.weight must be 1..10000, got ${weight}`);
    }
    return this.write('cpu.weight', String(weight));
  }

  setMemoryMax(bytes: number | null): Promise<void> {
    return this.write('memory.max', formatLimit('memory.max', bytes));
  }

  setMemoryHigh(bytes: number | null): Promise<void> {
    return this.write('memory.high', formatLimit('memory.high', bytes));
  }

  setMemorySwapMax(bytes: number | null): Promise<void> {
    return this.write('memory.swap.max', formatLimit('memory.swap.max', bytes));
  }

  /** Kills the whole cgroup on OOM instead of one process of it. */
  setMemoryOomGroup(on: boolean): Promise<void> {
    return this.write('memory.oom.group', on ? '1' : '0');
  }

  /** One write per device; each line states all four limits of that device. */
  async setIoMax(limits: IoLimit[]): Promise<void> {
    const lines = limits.map(formatIoMax);
    for (const line of lines) await this.write('io.max', line);
  }

  setPidsMax(n: number | null): Promise<void> {
    return this.write('pids.max', formatLimit('pids.max', n));
  }

  async cpuStat(): Promise<CpuStat> {
    return parseCpuStat(await this.read('cpu.stat'));
  }

  /** Highest memory use seen; null on kernels without memory.peak (< 5.19). */
  async memoryPeak(): Promise<number | null> {
    const p = this.file('memory.peak');
    try {
      return parseNumber(p, await this.#fs.readFile(p));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw wrap(`reading ${p}`, p, err);
    }
  }

  async memoryCurrent(): Promise<number> {
    return parseNumber(this.file('memory.current'), await this.read('memory.current'));
  }

  async memoryEvents(): Promise<MemoryEvents> {
    return parseMemoryEvents(await this.read('memory.events'));
  }

  async pidsCurrent(): Promise<number> {
    return parseNumber(this.file('pids.current'), await this.read('pids.current'));
  }

  /** SIGKILLs every process in this cgroup and its descendants. */
  async kill(): Promise<void> {
    try {
      await this.#fs.writeFile(this.file('cgroup.kill'), '1');
      return;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT')
        throw wrap(`writing "1" to ${this.file('cgroup.kill')}`, this.path, err);
    }
    // Kernels before 5.14 have no cgroup.kill: freeze (so nothing forks meanwhile), SIGKILL each
    // process, thaw. SIGKILL reaches tasks frozen by the v2 freezer.
    const canFreeze = await this.#fs.exists(this.file('cgroup.freeze'));
    if (canFreeze) await this.write('cgroup.freeze', '1');
    try {
      await this.#killEach();
    } finally {
      if (canFreeze) await this.write('cgroup.freeze', '0');
    }
  }

  async #killEach(): Promise<void> {
    const send = this.#opts.killProcess ?? ((pid, sig) => process.kill(pid, sig));
    for (const pid of await this.procs()) {
      try {
        send(pid, 'SIGKILL');
      } catch (err) {
        if (errnoCode(err) !== 'ESRCH')
          throw wrap(`killing pid ${pid} of ${this.path}`, this.path, err);
      }
    }
    for (const name of await this.children()) await this.child(name).#killEach();
  }

  /**
   * Ends the cgroup: SIGKILLs everything in it (kill) and removes it once the processes are gone
   * (remove). Nothing to do when it does not exist.
   */
  async destroy(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (!(await this.exists())) return;
    await this.kill();
    await this.remove(opts);
  }

  /**
   * Removes the cgroup and its child cgroups, retrying while processes are still exiting
   * (rmdir fails with EBUSY until cgroup.events says "populated 0"). No error when it is gone.
   */
  async remove(opts: { timeoutMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (opts.timeoutMs ?? 5000);
    await this.#remove(deadline);
  }

  async #remove(deadline: number): Promise<void> {
    if (!(await this.#fs.exists(this.path))) return;
    for (const name of await this.children()) await this.child(name).#remove(deadline);
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      try {
        await this.#fs.rmdir(this.path);
        return;
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'ENOENT') return;
        if (code !== 'EBUSY' || Date.now() >= deadline) {
          let detail = '';
          if (code === 'EBUSY') {
            const left = await this.procs().catch(() => []);
            detail = left.length > 0 ? ` (pids still inside: ${left.slice(0, 10).join(' ')})` : '';
          }
          const e = wrap(`removing cgroup ${this.path}`, this.path, err);
          e.message += detail;
          throw e;
        }
        await sleep(delay);
      }
    }
  }
}
