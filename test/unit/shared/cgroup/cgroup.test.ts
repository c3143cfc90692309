import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, stat, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Cgroup,
  CgroupError,
  blockDeviceNumber,
  cgroup2Available,
  nodeCgroupFs,
  delegatedWorkGroup,
  setupDelegation,
  CGROUP2_SUPER_MAGIC,
} from '../../../../shared/cgroup/index.ts';
import { makeTree, type FakeTree } from './tree.ts';

const ALL = ['cpu', 'io', 'memory', 'pids'];

describe('Cgroup on a cgroup2-shaped temp root', () => {
  let tree: FakeTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });
  const setup = async (pids: number[] = []): Promise<{ t: FakeTree; base: Cgroup }> => {
    tree = await makeTree({ base: '/svc', controllers: ALL, pids });
    return { t: tree, base: Cgroup.at('/svc', { root: tree.root, fs: tree.fs }) };
  };

  it('paths are the root plus the relative path, for nested children too', async () => {
    const { t, base } = await setup();
    const job = base.child('jobs').child('j1');
    assert.equal(job.rel, '/svc/jobs/j1');
    assert.equal(job.path, `${t.root}/svc/jobs/j1`);
    assert.equal(Cgroup.at('/', { root: t.root }).path, t.root);
    assert.equal(Cgroup.at('a//b/', { root: t.root }).rel, '/a/b');
  });

  it('names that could leave the root are refused before touching the filesystem', async () => {
    const { base } = await setup();
    for (const bad of ['..', '.', '', 'a/b', 'x\0y', 'a\nb']) {
      assert.throws(() => base.child(bad), RangeError, `child(${JSON.stringify(bad)})`);
    }
    assert.throws(() => Cgroup.at('/svc/../../etc', { root: '/tmp/x' }), /invalid cgroup name/);
    assert.throws(() => base.file('../cgroup.procs'), /invalid cgroup name/);
  });

  it('create makes the directory with the controller files the parent enables, and is idempotent', async () => {
    const { t, base } = await setup();
    await base.enableControllers(['cpu', 'memory']);
    const job = base.child('j1');
    await job.create();
    await job.create();
    assert.deepEqual((await job.controllers()).sort(), ['cpu', 'memory']);
    assert.ok((await stat(join(t.root, 'svc/j1/cpu.max'))).isFile());
  });

  it('enableControllers writes "+name" for each controller into subtree_control', async () => {
    const { t, base } = await setup();
    await base.enableControllers(['cpu', 'memory', 'io', 'pids']);
    assert.deepEqual((await base.subtreeControllers()).sort(), ALL);
    assert.equal((await t.read('/svc', 'cgroup.subtree_control')).trim(), 'cpu io memory pids');
  });

  it('enabling controllers in a cgroup that still has processes fails with EBUSY and says where', async () => {
    const { t, base } = await setup([4242]);
    await assert.rejects(base.enableControllers(['memory']), (err: CgroupError) => {
      assert.equal(err.code, 'EBUSY');
      assert.equal(
        err.message,
        `writing "+memory" to ${t.root}/svc/cgroup.subtree_control: EBUSY (busy (processes or child cgroups still inside, or no-internal-processes rule))`,
      );
      return true;
    });
  });

  it('limit setters write exactly what the kernel expects in each controller file', async () => {
    const { t, base } = await setup();
    await base.enableControllers(ALL);
    const job = base.child('j1');
    await job.create();
    await job.setCpuMax(50_000);
    assert.equal(await t.read('/svc/j1', 'cpu.max'), '50000 100000\n');
    await job.setCpuMax(null);
    assert.equal(await t.read('/svc/j1', 'cpu.max'), 'max 100000\n');
    await job.setMemoryMax(256 * 1024 * 1024);
    assert.equal(await t.read('/svc/j1', 'memory.max'), '268435456\n');
    await job.setMemoryHigh(200 * 1024 * 1024);
    assert.equal(await t.read('/svc/j1', 'memory.high'), '209715200\n');
    await job.setMemorySwapMax(0);
    assert.equal(await t.read('/svc/j1', 'memory.swap.max'), '0\n');
    await job.setMemoryMax(null);
    assert.equal(await t.read('/svc/j1', 'memory.max'), 'max\n');
    await job.setPidsMax(64);
    assert.equal(await t.read('/svc/j1', 'pids.max'), '64\n');
    await job.setIoMax([
      { device: '254:0', rbps: 1048576 },
      { device: '8:0', wbps: 2048, wiops: 10 },
    ]);
    assert.equal(
      await t.read('/svc/j1', 'io.max'),
      '254:0 rbps=1048576 wbps=max riops=max wiops=max\n8:0 rbps=max wbps=2048 riops=max wiops=10\n',
    );
  });

  it('setting a limit whose controller is not enabled names the file and ENOENT', async () => {
    const { t, base } = await setup();
    await base.enableControllers(['cpu']);
    const job = base.child('j1');
    await job.create();
    await assert.rejects(job.setMemoryMax(1 << 20), (err: CgroupError) => {
      assert.equal(err.code, 'ENOENT');
      assert.match(
        err.message,
        new RegExp(`^writing "1048576" to ${t.root}/svc/j1/memory.max: ENOENT`),
      );
      return true;
    });
  });

  it('the default fs never creates a missing controller file on write', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hp-cg-'));
    try {
      const cg = Cgroup.at('/', { root: dir });
      await assert.rejects(cg.setPidsMax(10), (err: CgroupError) => err.code === 'ENOENT');
      assert.deepEqual(await readdir(dir), []);
      await writeFile(join(dir, 'cpu.max'), 'max 100000\n');
      await cg.setCpuMax(20_000, 50_000);
      // the shorter second write must not leave the tail of the first one behind
      await cg.setCpuMax(5_000, 10_000);
      assert.equal(await readFile(join(dir, 'cpu.max'), 'utf8'), '5000 10000');
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('reads cpu.stat, memory.current, memory.peak and memory.events from the files', async () => {
    const { t, base } = await setup();
    await base.enableControllers(ALL);
    const job = base.child('j1');
    await job.create();
    const dir = join(t.root, 'svc/j1');
    await writeFile(
      join(dir, 'cpu.stat'),
      'usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 10\nnr_throttled 7\nthrottled_usec 900\n',
    );
    await writeFile(join(dir, 'memory.current'), '4096\n');
    await writeFile(join(dir, 'memory.peak'), '8192\n');
    await writeFile(
      join(dir, 'memory.events'),
      'low 0\nhigh 3\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n',
    );
    assert.deepEqual(await job.cpuStat(), {
      usageUsec: 100,
      userUsec: 60,
      systemUsec: 40,
      nrPeriods: 10,
      nrThrottled: 7,
      throttledUsec: 900,
    });
    assert.equal(await job.memoryCurrent(), 4096);
    assert.equal(await job.memoryPeak(), 8192);
    assert.deepEqual(await job.memoryEvents(), { low: 0, high: 3, max: 5, oom: 1, oomKill: 1 });
    await rm(join(dir, 'memory.peak'));
    assert.equal(await job.memoryPeak(), null, 'kernels before 5.19 have no memory.peak');
  });

  it('moveProcess moves a pid from one cgroup to another, and procs lists it', async () => {
    const { base } = await setup([100, 200]);
    const leaf = base.child('leaf');
    await leaf.create();
    await leaf.moveProcess(200);
    assert.deepEqual(await leaf.procs(), [200]);
    assert.deepEqual(await base.procs(), [100]);
    await assert.rejects(leaf.moveProcess(-1), RangeError);
  });

  it('kill writes cgroup.kill, which empties the whole subtree', async () => {
    const { t, base } = await setup();
    await base.enableControllers(['pids']);
    const job = base.child('j1');
    await job.create();
    await job.child('inner').create();
    await t.place('/svc/j1', 11);
    await t.place('/svc/j1/inner', 12);
    assert.equal(await job.populated(), true);
    await job.kill();
    assert.equal(await job.populated(), false);
    assert.deepEqual(await job.child('inner').procs(), []);
  });

  it('kill without cgroup.kill (kernel < 5.14) freezes and SIGKILLs every pid of the subtree', async () => {
    const { t } = await setup();
    const sent: string[] = [];
    const frozen: string[] = [];
    const job = Cgroup.at('/svc/j1', {
      root: t.root,
      fs: {
        ...t.fs,
        async writeFile(p, data) {
          if (p.endsWith('cgroup.freeze')) frozen.push(data);
          await t.fs.writeFile(p, data);
        },
      },
      killProcess: (pid, sig) => {
        sent.push(`${pid} ${sig}`);
        if (pid === 22) throw Object.assign(new Error('gone'), { code: 'ESRCH' });
      },
    });
    await job.create();
    await job.child('inner').create();
    await t.place('/svc/j1', 21);
    await t.place('/svc/j1', 22);
    await t.place('/svc/j1/inner', 23);
    await rm(join(t.root, 'svc/j1/cgroup.kill'));
    await rm(join(t.root, 'svc/j1/inner/cgroup.kill'));
    await job.kill();
    assert.deepEqual(sent, ['21 SIGKILL', '22 SIGKILL', '23 SIGKILL']);
    assert.deepEqual(frozen, ['1', '0'], 'frozen during the kill, thawed afterwards');
  });

  it('remove waits until the last process is gone, then removes children and the cgroup', async () => {
    const { t, base } = await setup();
    const job = base.child('j1');
    await job.create();
    await job.child('inner').create();
    await t.place('/svc/j1/inner', 31);
    // the process "exits" a moment after remove starts: rmdir must be retried, not given up
    setTimeout(() => void t.place('/svc', 31), 50);
    await job.remove({ timeoutMs: 3000 });
    assert.equal(await job.exists(), false);
    await job.remove(); // already gone: no error
  });

  it('remove gives up after the timeout with EBUSY and the pids left inside', async () => {
    const { t, base } = await setup();
    const job = base.child('j1');
    await job.create();
    await t.place('/svc/j1', 41);
    const t0 = Date.now();
    await assert.rejects(job.remove({ timeoutMs: 200 }), (err: CgroupError) => {
      assert.equal(err.code, 'EBUSY');
      assert.match(
        err.message,
        new RegExp(`^removing cgroup ${t.root}/svc/j1: EBUSY .*pids still inside: 41`),
      );
      return true;
    });
    assert.ok(Date.now() - t0 >= 200);
  });

  it('self finds the cgroup from a v2 /proc/self/cgroup and refuses a hybrid one', async () => {
    const { t } = await setup();
    const file = join(t.root, 'proc-cgroup');
    await writeFile(file, '0::/svc\n');
    const self = await Cgroup.self({ root: t.root, fs: t.fs, procSelfCgroup: file });
    assert.equal(self.rel, '/svc');
    await writeFile(file, '4:memory:/svc\n0::/svc\n');
    await assert.rejects(
      Cgroup.self({ root: t.root, fs: t.fs, procSelfCgroup: file }),
      /finding own cgroup from .*not a pure cgroup v2/,
    );
  });
});

describe('setupDelegation', () => {
  let tree: FakeTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  it('moves every process of the unit cgroup to the leaf and enables the controllers', async () => {
    tree = await makeTree({
      base: '/system.slice/cu-thor.service',
      controllers: ['cpu', 'io', 'memory', 'pids'],
      pids: [500, 501],
    });
    const procFile = join(tree.root, 'proc-500-cgroup');
    await writeFile(procFile, '0::/system.slice/cu-thor.service\n');
    const { base, leaf, missing } = await setupDelegation({
      root: tree.root,
      fs: tree.fs,
      pid: 500,
      procSelfCgroup: procFile,
      controllers: ['cpu', 'memory', 'io'],
    });
    assert.equal(base.rel, '/system.slice/cu-thor.service');
    assert.equal(leaf.rel, '/system.slice/cu-thor.service/supervisor');
    assert.deepEqual(missing, []);
    assert.deepEqual(await base.procs(), []);
    assert.deepEqual((await leaf.procs()).sort(), [500, 501]);
    assert.deepEqual((await base.subtreeControllers()).sort(), ['cpu', 'io', 'memory']);
    // a job cgroup created now gets the limit files
    const job = base.child('jobs');
    await job.create();
    await job.setMemoryMax(1 << 20);
  });

  it('reports controllers the delegated cgroup does not offer as missing and enables the rest', async () => {
    tree = await makeTree({ base: '/svc', controllers: ['memory', 'pids'], pids: [7] });
    const procFile = join(tree.root, 'proc');
    await writeFile(procFile, '0::/svc\n');
    const { base, missing } = await setupDelegation({
      root: tree.root,
      fs: tree.fs,
      pid: 7,
      procSelfCgroup: procFile,
      controllers: ['cpu', 'memory', 'io'],
      leafName: 'daemon',
    });
    assert.deepEqual(missing, ['cpu', 'io']);
    assert.deepEqual(await base.subtreeControllers(), ['memory']);
    assert.deepEqual(await base.child('daemon').procs(), [7]);
  });

  it('run again from inside the leaf (a restart) keeps the same base and leaf', async () => {
    tree = await makeTree({ base: '/svc', controllers: ['memory'], pids: [7] });
    const procFile = join(tree.root, 'proc');
    await writeFile(procFile, '0::/svc\n');
    const opts = {
      root: tree.root,
      fs: tree.fs,
      pid: 7,
      procSelfCgroup: procFile,
      controllers: ['memory'],
    };
    await setupDelegation(opts);
    await writeFile(procFile, '0::/svc/supervisor\n');
    const again = await setupDelegation(opts);
    assert.equal(again.base.rel, '/svc');
    assert.deepEqual(await again.leaf.procs(), [7]);
  });

  it('refuses to delegate the root cgroup', async () => {
    tree = await makeTree({ base: '/svc', controllers: ['memory'] });
    const procFile = join(tree.root, 'proc');
    await writeFile(procFile, '0::/\n');
    await assert.rejects(
      setupDelegation({
        root: tree.root,
        fs: tree.fs,
        pid: 1,
        procSelfCgroup: procFile,
        controllers: [],
      }),
      /is in the root cgroup, not in a delegated unit/,
    );
  });
});

describe('Cgroup.destroy', () => {
  let tree: FakeTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  it('kills what is inside, removes the cgroup, and does nothing once it is gone', async () => {
    tree = await makeTree({ base: '/svc', controllers: ['memory', 'pids'] });
    const cg = Cgroup.at('/svc/jobs/one', { root: tree.root, fs: tree.fs });
    await cg.parent()!.create();
    await cg.create();
    await tree.place('/svc/jobs/one', 4242);
    await cg.child('nested').create();
    await tree.place('/svc/jobs/one/nested', 4243);
    await cg.destroy({ timeoutMs: 2000 });
    assert.equal(await cg.exists(), false);
    assert.deepEqual(await cg.parent()!.procs(), [], 'nothing was moved out instead of killed');
    await cg.destroy(); // gone: no error
  });
});

describe('delegatedWorkGroup under a given base', () => {
  let tree: FakeTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  it('creates <base>/<name> with the controllers enabled down to it', async () => {
    tree = await makeTree({ base: '/svc', controllers: ['cpu', 'io', 'memory', 'pids'] });
    const base = Cgroup.at('/svc', { root: tree.root, fs: tree.fs });
    const work = await delegatedWorkGroup({ base, controllers: ['cpu', 'memory'], name: 'jobs' });
    assert.equal(work.rel, '/svc/jobs');
    assert.deepEqual((await base.subtreeControllers()).sort(), ['cpu', 'memory']);
    assert.deepEqual((await work.subtreeControllers()).sort(), ['cpu', 'memory']);
    const job = work.child('one');
    await job.create();
    await job.setMemoryMax(1 << 20);
  });

  it('names the controllers the base does not offer', async () => {
    tree = await makeTree({ base: '/svc', controllers: ['memory'] });
    const base = Cgroup.at('/svc', { root: tree.root, fs: tree.fs });
    await assert.rejects(
      delegatedWorkGroup({ base, controllers: ['cpu', 'memory', 'pids'], name: 'sessions' }),
      /controllers cpu, pids are not available in .*svc/,
    );
  });
});

describe('cgroup2Available', () => {
  it('says no, with the reason, for a directory that is not a cgroup2 mount', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hp-cg-'));
    try {
      const r = await cgroup2Available(dir);
      assert.equal(r.ok, false);
      assert.match(r.reason ?? '', /is not a cgroup2 mount \(statfs type 0x[0-9a-f]+/);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('on a cgroup2 mount, lists the controllers and names the missing ones', async () => {
    const tree = await makeTree({ base: '/svc', controllers: ['memory', 'pids'] });
    try {
      const statfsType = (): Promise<number> => Promise.resolve(CGROUP2_SUPER_MAGIC);
      const r = await cgroup2Available(tree.root, { fs: tree.fs, statfsType });
      assert.equal(r.ok, false);
      assert.deepEqual(r.controllers, ['memory', 'pids']);
      assert.match(r.reason ?? '', /lacks controllers cpu, io/);
      const ok = await cgroup2Available(tree.root, { fs: tree.fs, statfsType, want: ['memory'] });
      assert.deepEqual(ok, { ok: true, controllers: ['memory', 'pids'] });
    } finally {
      await tree.cleanup();
    }
  });

  it('says no for a missing path instead of throwing', async () => {
    const r = await cgroup2Available('/nonexistent/hostplane-cgroup');
    assert.equal(r.ok, false);
    assert.match(r.reason ?? '', /ENOENT/);
  });
});

describe('blockDeviceNumber', () => {
  it('gives the MAJ:MIN the kernel shows in /sys for a real block device', async (t) => {
    const blocks = await readdir('/sys/class/block').catch(() => []);
    const name = blocks.find((b) => !b.startsWith('loop') && !b.startsWith('ram'));
    if (name === undefined || !(await nodeCgroupFs.exists(`/dev/${name}`))) {
      t.skip('no block device node on this machine');
      return;
    }
    const want = (await readFile(`/sys/class/block/${name}/dev`, 'utf8')).trim();
    assert.equal(await blockDeviceNumber(`/dev/${name}`), want);
  });

  it('refuses a character device and a missing path with the path in the error', async () => {
    await assert.rejects(
      blockDeviceNumber('/dev/null'),
      /^Error: finding the device number of \/dev\/null: not a block device$/,
    );
    await assert.rejects(
      blockDeviceNumber('/dev/hostplane-none'),
      /finding the device number of \/dev\/hostplane-none: ENOENT/,
    );
  });
});
