// A temp directory shaped like a cgroup2 tree, and a CgroupFs over it that keeps the kernel's
// rules that matter to shared/cgroup: mkdir fills in the interface files the parent's
// subtree_control implies, rmdir refuses a populated cgroup or one with children, writing a
// pid to cgroup.procs moves it, cgroup.kill empties the subtree, subtree_control refuses
// unknown controllers and cgroups that still hold processes.
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname, basename } from 'node:path';
import type { CgroupFs } from '../../../../shared/cgroup/index.ts';

const CORE_FILES: Record<string, string> = {
  'cgroup.type': 'domain\n',
  'cgroup.procs': '',
  'cgroup.threads': '',
  'cgroup.events': 'populated 0\nfrozen 0\n',
  'cgroup.freeze': '0\n',
  'cgroup.kill': '',
  'cgroup.max.depth': 'max\n',
  'cgroup.subtree_control': '\n',
  'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\n',
};

const CONTROLLER_FILES: Record<string, Record<string, string>> = {
  cpu: {
    'cpu.max': 'max 100000\n',
    'cpu.weight': '100\n',
    'cpu.stat':
      'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n',
  },
  memory: {
    'memory.max': 'max\n',
    'memory.high': 'max\n',
    'memory.swap.max': 'max\n',
    'memory.oom.group': '0\n',
    'memory.current': '0\n',
    'memory.peak': '0\n',
    'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n',
  },
  io: { 'io.max': '', 'io.stat': '' },
  pids: { 'pids.max': 'max\n', 'pids.current': '0\n' },
};

function errno(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

async function fileExists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

async function writeInterface(
  dir: string,
  controllers: string[],
  available: string[],
): Promise<void> {
  const files: Record<string, string> = { ...CORE_FILES };
  for (const c of controllers) Object.assign(files, CONTROLLER_FILES[c] ?? {});
  files['cgroup.controllers'] = available.join(' ') + '\n';
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
}

export interface FakeTree {
  root: string;
  fs: CgroupFs;
  /** puts a pid into a cgroup as if it had been started there (rel like "/a/b"). */
  place(rel: string, pid: number): Promise<void>;
  read(rel: string, file: string): Promise<string>;
  cleanup(): Promise<void>;
}

/**
 * A tree whose root holds `base` (a delegated service cgroup, e.g. "/svc") offering
 * `controllers` and containing `pids`.
 */
export async function makeTree(opts: {
  base: string;
  controllers: string[];
  pids?: number[];
}): Promise<FakeTree> {
  const root = await mkdtemp(join(tmpdir(), 'hp-cgroup-'));
  const all = opts.controllers;
  await writeInterface(root, [], all);
  await writeFile(join(root, 'cgroup.subtree_control'), all.join(' ') + '\n');
  let parent = root;
  for (const seg of opts.base.split('/').filter((s) => s !== '')) {
    parent = join(parent, seg);
    await mkdir(parent);
    await writeInterface(parent, all, all);
    await writeFile(join(parent, 'cgroup.subtree_control'), '\n');
  }

  const procsOf = async (dir: string): Promise<number[]> =>
    (await readFile(join(dir, 'cgroup.procs'), 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map(Number);
  const childDirs = async (dir: string): Promise<string[]> =>
    (await readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .map((e) => join(dir, e.name));
  const allDirs = async (dir: string): Promise<string[]> => {
    const out = [dir];
    for (const c of await childDirs(dir)) out.push(...(await allDirs(c)));
    return out;
  };
  const refreshEvents = async (): Promise<void> => {
    const dirs = await allDirs(root);
    for (const d of dirs) {
      let populated = false;
      for (const sub of await allDirs(d)) if ((await procsOf(sub)).length > 0) populated = true;
      if (d !== root)
        await writeFile(join(d, 'cgroup.events'), `populated ${populated ? 1 : 0}\nfrozen 0\n`);
    }
  };
  const movePid = async (target: string, pid: number): Promise<void> => {
    for (const d of await allDirs(root)) {
      const ps = await procsOf(d);
      if (ps.includes(pid))
        await writeFile(
          join(d, 'cgroup.procs'),
          ps
            .filter((p) => p !== pid)
            .map((p) => `${p}\n`)
            .join(''),
        );
    }
    const ps = await procsOf(target);
    await writeFile(join(target, 'cgroup.procs'), [...ps, pid].map((p) => `${p}\n`).join(''));
    await refreshEvents();
  };

  const fs: CgroupFs = {
    readFile: (p) => readFile(p, 'utf8'),
    async writeFile(p, data) {
      if (!(await fileExists(p))) throw errno('ENOENT', `no such file, open '${p}'`);
      const dir = dirname(p);
      switch (basename(p)) {
        case 'cgroup.procs': {
          const pid = Number(data.trim());
          if (!Number.isSafeInteger(pid)) throw errno('EINVAL', 'invalid argument');
          const subtree = (await readFile(join(dir, 'cgroup.subtree_control'), 'utf8')).trim();
          if (dir !== root && subtree !== '') throw errno('EBUSY', 'device or resource busy');
          await movePid(dir, pid);
          return;
        }
        case 'cgroup.subtree_control': {
          const available = (await readFile(join(dir, 'cgroup.controllers'), 'utf8')).split(/\s+/);
          const enabled = new Set((await readFile(p, 'utf8')).split(/\s+/).filter((s) => s !== ''));
          for (const tok of data.split(/\s+/).filter((s) => s !== '')) {
            const name = tok.slice(1);
            if (!available.includes(name)) throw errno('ENOENT', 'no such file or directory');
            if (tok.startsWith('+')) enabled.add(name);
            else enabled.delete(name);
          }
          if (dir !== root && (await procsOf(dir)).length > 0)
            throw errno('EBUSY', 'device or resource busy');
          await writeFile(p, [...enabled].sort().join(' ') + '\n');
          return;
        }
        case 'cgroup.kill': {
          if (data.trim() !== '1') throw errno('EINVAL', 'invalid argument');
          for (const d of await allDirs(dir)) await writeFile(join(d, 'cgroup.procs'), '');
          await refreshEvents();
          return;
        }
        case 'io.max': {
          // the kernel keeps one line per device
          const dev = data.split(' ')[0] ?? '';
          const lines = (await readFile(p, 'utf8'))
            .split('\n')
            .filter((l) => l !== '' && !l.startsWith(dev + ' '));
          await writeFile(p, [...lines, data.trim()].sort().join('\n') + '\n');
          return;
        }
        default:
          await writeFile(p, data.endsWith('\n') ? data : data + '\n');
      }
    },
    async mkdir(p) {
      const parentDir = dirname(p);
      if (!(await fileExists(parentDir))) await fs.mkdir(parentDir);
      try {
        await mkdir(p);
      } catch (err) {
        if ((err as { code?: string }).code === 'EEXIST') return;
        throw err;
      }
      const enabled = (await readFile(join(parentDir, 'cgroup.subtree_control'), 'utf8'))
        .split(/\s+/)
        .filter((s) => s !== '');
      await writeInterface(p, enabled, enabled);
      await refreshEvents();
    },
    async rmdir(p) {
      if (!(await fileExists(p))) throw errno('ENOENT', 'no such file or directory');
      const events = await readFile(join(p, 'cgroup.events'), 'utf8');
      if ((await childDirs(p)).length > 0 || events.includes('populated 1')) {
        throw errno('EBUSY', 'device or resource busy');
      }
      await rm(p, { recursive: true });
    },
    exists: fileExists,
    readdir: async (p) => (await childDirs(p)).map((d) => basename(d)),
  };

  for (const pid of opts.pids ?? []) await movePid(join(root, opts.base), pid);

  return {
    root,
    fs,
    place: (rel, pid) => movePid(join(root, rel), pid),
    read: (rel, file) => readFile(join(root, rel, file), 'utf8'),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}
