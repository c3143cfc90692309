// A cgroup per sandbox session, under the daemon's delegated subtree (Delegate=yes):
// <unit>/daemon holds the daemon itself, <unit>/sessions/<session id> each session. The session's
// namespace init joins its cgroup before the command runs (hostplane-nsinit --cgroup), so every
// process of the session is limited and cgroup.kill ends them all at cleanup.
import {
  delegatedWorkGroup,
  formatCpuMax,
  formatLimit,
  type Cgroup,
  type CgroupFs,
} from '../../shared/cgroup/index.ts';
import type { Logger } from '../../shared/log/index.ts';
import type { SessionLimits, TargetLimits } from './config.ts';

/** Controllers a session's limits use; all must be delegated for cgroup mode. */
export const SESSION_CONTROLLERS = ['cpu', 'memory', 'pids'] as const;
/** cpu.max period; the quota is cpu_percent % of it */
export const CPU_PERIOD_US = 100_000;

/** One write into a session cgroup's control file. */
export interface CgroupWrite {
  file: 'cpu.max' | 'memory.max' | 'memory.high' | 'pids.max';
  value: string;
}

/** A target's limits over the [sandbox.limits] defaults, key by key (a pure function). */
export function effectiveLimits(defaults: SessionLimits, target: TargetLimits): SessionLimits {
  return {
    cpu_percent: target.cpu_percent === undefined ? defaults.cpu_percent : target.cpu_percent,
    memory_max: target.memory_max === undefined ? defaults.memory_max : target.memory_max,
    memory_high: target.memory_high === undefined ? defaults.memory_high : target.memory_high,
    pids_max: target.pids_max === undefined ? defaults.pids_max : target.pids_max,
  };
}

/**
 * The writes that give a new session cgroup `limits`: every limit, "max" included, so the files
 * say what the config says. Plan as data; tests compare it as text.
 */
export function limitWrites(limits: SessionLimits): CgroupWrite[] {
  const cpu =
    limits.cpu_percent === null
      ? null
      : Math.max(1000, Math.round((limits.cpu_percent * CPU_PERIOD_US) / 100));
  return [
    { file: 'cpu.max', value: formatCpuMax(cpu, CPU_PERIOD_US) },
    { file: 'memory.max', value: formatLimit('memory.max', limits.memory_max) },
    { file: 'memory.high', value: formatLimit('memory.high', limits.memory_high) },
    { file: 'pids.max', value: formatLimit('pids.max', limits.pids_max) },
  ];
}

export interface SessionCgroupsOptions {
  /** 'required': no usable cgroup v2 → setup throws; 'optional': namespaces only */
  mode: 'required' | 'optional';
  log: Logger;
  /** cgroup2 mount; default /sys/fs/cgroup */
  root?: string;
  fs?: CgroupFs;
  /** an already delegated cgroup to work under instead of finding our own (tests, VM) */
  base?: Cgroup;
}

/** The session cgroups of the daemon. */
export class SessionCgroups {
  /** the parent of every session cgroup */
  readonly parent: Cgroup;
  readonly #log: Logger;

  private constructor(parent: Cgroup, log: Logger) {
    this.parent = parent;
    this.#log = log;
  }

  /**
   * Prepares `<base>/sessions` with the session controllers enabled and ends what a previous
   * daemon left there. Without usable cgroup v2: throws in 'required' mode, else answers
   * `cgroups: null` and why, for the daemon's warning and STATUS.
   */
  static async setup(
    o: SessionCgroupsOptions,
  ): Promise<{ cgroups: SessionCgroups | null; problem: string | null }> {
    const log = o.log.child({ component: 'cgroups' });
    let parent: Cgroup;
    try {
      parent = await sessionsParent(o);
    } catch (err) {
      const problem = (err as Error).message;
      if (o.mode === 'required') {
        throw new Error(
          `cgroup v2 is required but not usable: ${problem} (set [cgroup] require = false to run ` +
            'sandboxes with namespaces only, without resource limits)',
          { cause: err },
        );
      }
      log.warn({ reason: problem }, 'cgroup v2 not usable: sandboxes run with namespaces only');
      return { cgroups: null, problem };
    }
    const cg = new SessionCgroups(parent, log);
    await cg.#removeLeftovers();
    log.info({ cgroup: parent.rel }, 'session cgroups ready');
    return { cgroups: cg, problem: null };
  }

  /** Creates the cgroup of session `id` with `limits`; removes it again when a write fails. */
  async create(id: string, limits: SessionLimits): Promise<Cgroup> {
    const cg = this.parent.child(id);
    await cg.create();
    try {
      for (const w of limitWrites(limits)) await cg.write(w.file, w.value);
    } catch (err) {
      await cg.remove().catch(() => undefined);
      throw new Error(`creating the cgroup of session ${id}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return cg;
  }

  /** SIGKILLs every process of `cg` (cgroup.kill) and removes it once they are gone. */
  release(cg: Cgroup): Promise<void> {
    return cg.destroy({ timeoutMs: 10_000 });
  }

  async #removeLeftovers(): Promise<void> {
    for (const name of await this.parent.children()) {
      const cg = this.parent.child(name);
      try {
        await this.release(cg);
        this.#log.info({ cgroup: cg.rel }, 'removed the cgroup of a session of a previous run');
      } catch (err) {
        this.#log.error(
          { cgroup: cg.rel, err: (err as Error).message },
          'removing leftover cgroup',
        );
      }
    }
  }
}

function sessionsParent(o: SessionCgroupsOptions): Promise<Cgroup> {
  return delegatedWorkGroup({
    ...(o.root === undefined ? {} : { root: o.root }),
    ...(o.fs === undefined ? {} : { fs: o.fs }),
    ...(o.base === undefined ? {} : { base: o.base }),
    controllers: SESSION_CONTROLLERS,
    name: 'sessions',
  });
}
