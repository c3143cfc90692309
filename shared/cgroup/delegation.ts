import { statfs, stat } from 'node:fs/promises';
import { Cgroup, CgroupError, DEFAULT_CGROUP_ROOT } from './cgroup.ts';
import { nodeCgroupFs, type CgroupFs } from './fs.ts';
import { parseNames } from './format.ts';

/** statfs f_type of a cgroup2 mount (CGROUP2_SUPER_MAGIC). */
export const CGROUP2_SUPER_MAGIC = 0x63677270;

export interface DelegationOptions {
  root?: string;
  fs?: CgroupFs;
  /** where this process moves to, below its own cgroup; default "supervisor". */
  leafName?: string;
  /** controllers to enable for the children of the delegated cgroup. */
  controllers: string[];
  /** the process whose cgroup is delegated; default this process. */
  pid?: number;
  /** path of the process's cgroup file; default /proc/<pid>/cgroup. */
  procSelfCgroup?: string;
}

/**
 * Prepare a delegated subtree (Delegate=yes): find own cgroup, move this process to the leaf
 * `<self>/<leafName>` so controllers can be enabled in `<self>`, enable the requested controllers,
 * and return the subtree root. Every process of `<self>` moves to the leaf, since the kernel
 * refuses controllers in a cgroup that still has processes of its own. Safe to call again: a
 * process already in the leaf keeps it.
 */
export async function setupDelegation(
  opts: DelegationOptions,
): Promise<{ base: Cgroup; leaf: Cgroup; missing: string[] }> {
  const leafName = opts.leafName ?? 'supervisor';
  const pid = opts.pid ?? process.pid;
  const cgOpts = {
    ...(opts.root === undefined ? {} : { root: opts.root }),
    fs: opts.fs ?? nodeCgroupFs,
  };
  const self = await Cgroup.self({
    ...cgOpts,
    procSelfCgroup: opts.procSelfCgroup ?? `/proc/${pid}/cgroup`,
  });
  const selfName = self.rel.split('/').pop();
  const base = selfName === leafName ? (self.parent() ?? self) : self;
  if (base.rel === '/') {
    throw new CgroupError(
      `setting up cgroup delegation: process ${pid} is in the root cgroup, not in a delegated unit (Delegate=yes)`,
      base.path,
      undefined,
      undefined,
    );
  }
  const leaf = base.child(leafName);
  await leaf.create();
  const others = (await base.procs()).filter((p) => p !== pid);
  // This process first, so a failure leaves it where it can still report.
  if (self.rel === base.rel) await leaf.moveProcess(pid);
  for (const p of others) {
    try {
      await leaf.moveProcess(p);
    } catch (err) {
      // a process that exited meanwhile cannot be moved, and no longer needs to be
      if ((err as CgroupError).code !== 'ESRCH') throw err;
    }
  }
  const available = await base.controllers();
  const missing = opts.controllers.filter((c) => !available.includes(c));
  const enabled = await base.subtreeControllers();
  await base.enableControllers(
    opts.controllers.filter((c) => available.includes(c) && !enabled.includes(c)),
  );
  return { base, leaf, missing };
}

/** Is `root` a cgroup2 mount offering `want` controllers (default cpu, memory, io, pids)? */
export async function cgroup2Available(
  root: string = DEFAULT_CGROUP_ROOT,
  opts: { fs?: CgroupFs; want?: string[]; statfsType?: (p: string) => Promise<number> } = {},
): Promise<{ ok: boolean; reason?: string; controllers: string[] }> {
  const want = opts.want ?? ['cpu', 'memory', 'io', 'pids'];
  const fs = opts.fs ?? nodeCgroupFs;
  const typeOf = opts.statfsType ?? (async (p: string) => (await statfs(p)).type);
  let type: number;
  try {
    type = await typeOf(root);
  } catch (err) {
    return { ok: false, reason: `${root}: ${(err as Error).message}`, controllers: [] };
  }
  if (type !== CGROUP2_SUPER_MAGIC) {
    return {
      ok: false,
      reason: `${root} is not a cgroup2 mount (statfs type 0x${type.toString(16)}; cgroup v1 or hybrid host?)`,
      controllers: [],
    };
  }
  let controllers: string[];
  try {
    controllers = parseNames(await fs.readFile(`${root}/cgroup.controllers`));
  } catch (err) {
    return {
      ok: false,
      reason: `reading ${root}/cgroup.controllers: ${(err as Error).message}`,
      controllers: [],
    };
  }
  const missing = want.filter((c) => !controllers.includes(c));
  if (missing.length > 0) {
    return {
      ok: false,
      reason: `${root} lacks controllers ${missing.join(', ')} (bound to cgroup v1, or not delegated)`,
      controllers,
    };
  }
  return { ok: true, controllers };
}

/** "MAJ:MIN" of a block device node such as /dev/vda, as io.max wants it. */
export async function blockDeviceNumber(path: string): Promise<string> {
  let st;
  try {
    st = await stat(path, { bigint: true });
  } catch (err) {
    throw new Error(`finding the device number of ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!st.isBlockDevice()) {
    throw new Error(`finding the device number of ${path}: not a block device`);
  }
  const rdev = st.rdev;
  // glibc's gnu_dev_major/gnu_dev_minor encoding of a 64-bit dev_t
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

export interface WorkGroupOptions {
  /** cgroup2 mount; default /sys/fs/cgroup */
  root?: string;
  fs?: CgroupFs;
  /** an already delegated cgroup to work under instead of this process's own (tests, VM) */
  base?: Cgroup;
  /** controllers the work needs, enabled down to the work group */
  controllers: readonly string[];
  /** the child of the delegated cgroup that holds the work ("jobs", "sessions") */
  name: string;
}

/**
 * The cgroup a daemon puts its work under: `<delegated unit cgroup>/<name>`, with `controllers`
 * enabled, the daemon itself moved to `<unit>/daemon`. Refuses (without touching anything) a
 * root that is not cgroup2 or lacks a controller, so a host whose cgroups are not ours is never
 * changed; with `base`, works under that cgroup instead.
 */
export async function delegatedWorkGroup(o: WorkGroupOptions): Promise<Cgroup> {
  const root = o.root ?? DEFAULT_CGROUP_ROOT;
  const fsOpt = o.fs === undefined ? {} : { fs: o.fs };
  const want = [...o.controllers];
  let base: Cgroup;
  if (o.base !== undefined) {
    base = o.base;
    const have = await base.controllers();
    const missing = want.filter((c) => !have.includes(c));
    if (missing.length > 0) {
      throw new Error(`controllers ${missing.join(', ')} are not available in ${base.path}`);
    }
    await base.enableControllers(want);
  } else {
    // checked before setupDelegation, which moves this process
    const avail = await cgroup2Available(root, { ...fsOpt, want });
    if (!avail.ok) throw new Error(avail.reason ?? `${root} is not a cgroup2 mount`);
    const d = await setupDelegation({ root, ...fsOpt, controllers: want, leafName: 'daemon' });
    if (d.missing.length > 0) {
      throw new Error(
        `controllers ${d.missing.join(', ')} are not delegated to ${d.base.path} (Delegate=yes?)`,
      );
    }
    base = d.base;
  }
  const work = base.child(o.name);
  await work.create();
  await work.enableControllers(want);
  return work;
}
