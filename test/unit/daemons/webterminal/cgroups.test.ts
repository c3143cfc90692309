import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { Cgroup } from '../../../../shared/cgroup/index.ts';
import { parseConfig } from '../../../../shared/config/index.ts';
import { silentLogger } from '../../../../shared/log/index.ts';
import { sandboxPtyArgv } from '../../../../shared/pty/index.ts';
import {
  effectiveLimits,
  limitWrites,
  SessionCgroups,
} from '../../../../daemons/webterminal/cgroups.ts';
import { configSchema, restartOnlyChanges } from '../../../../daemons/webterminal/config.ts';
import { makeTree, type FakeTree } from '../../shared/cgroup/tree.ts';

// plain HTTP needs public_origins
const parse = (toml: string) =>
  parseConfig(
    `public_origins = ["https://t.example.com"]\n${toml}`,
    'webterminal.toml',
    configSchema,
  );
const planText = (w: { file: string; value: string }[]): string =>
  w.map((x) => `${x.file} ${x.value}`).join('\n');

describe('webterminal session limits', () => {
  const table = [
    {
      name: 'the defaults of [sandbox.limits]',
      toml: '[[targets]]\nname = "a"\ntype = "sandbox"\n',
      want: 'cpu.max 100000 100000\nmemory.max 536870912\nmemory.high max\npids.max 512',
    },
    {
      name: '[sandbox.limits] keys, "max" meaning no limit',
      toml:
        '[sandbox.limits]\ncpu_percent = 150\nmemory_max = "max"\npids_max = 64\n' +
        '[[targets]]\nname = "a"\ntype = "sandbox"\n',
      want: 'cpu.max 150000 100000\nmemory.max max\nmemory.high max\npids.max 64',
    },
    {
      name: 'a target replaces only the keys it sets, "max" included',
      toml:
        '[sandbox.limits]\ncpu_percent = 50\n' +
        '[[targets]]\nname = "a"\ntype = "sandbox"\n' +
        '[targets.limits]\nmemory_max = "64MiB"\nmemory_high = "48MiB"\ncpu_percent = "max"\n',
      want: 'cpu.max max 100000\nmemory.max 67108864\nmemory.high 50331648\npids.max 512',
    },
    {
      name: 'a tiny cpu share still gets the 1 ms quota the kernel accepts',
      toml: '[sandbox.limits]\ncpu_percent = 0.1\n[[targets]]\nname = "a"\ntype = "sandbox"\n',
      want: 'cpu.max 1000 100000\nmemory.max 536870912\nmemory.high max\npids.max 512',
    },
  ];
  for (const t of table) {
    it(`plans ${t.name}`, () => {
      const c = parse(t.toml);
      const target = c.targets[0]!;
      assert.equal(target.type, 'sandbox');
      assert.equal(planText(limitWrites(effectiveLimits(c.sandbox.limits, target.limits))), t.want);
    });
  }

  it('refuses limits that make no sense and unknown limit keys', () => {
    assert.throws(() => parse('[sandbox.limits]\npids_max = 0\n'), /pids_max/);
    assert.throws(() => parse('[sandbox.limits]\nmemory_max = "lots"\n'), /memory_max/);
    assert.throws(
      () => parse('[[targets]]\nname = "a"\ntype = "sandbox"\n[targets.limits]\nio_max = 1\n'),
      /io_max/,
    );
    assert.equal(parse('').cgroup.require, true);
    assert.equal(parse('[cgroup]\nrequire = false\n').cgroup.require, false);
  });

  it('joins the session cgroup in the init, before the command', () => {
    const argv = sandboxPtyArgv(
      { unshare: '/u', nsinit: '/i', setsid: '/s' },
      ['/bin/sh'],
      undefined,
      '/sys/fs/cgroup/x/sessions/S1',
    );
    const init = argv.indexOf('/i');
    assert.deepEqual(argv.slice(init, init + 3), [
      '/i',
      '--cgroup',
      '/sys/fs/cgroup/x/sessions/S1',
    ]);
    assert.ok(argv.indexOf('--cgroup') < argv.lastIndexOf('--'));
  });
});

describe('webterminal session cgroups on a cgroup2-shaped temp root', () => {
  let tree: FakeTree | undefined;
  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });
  const base = async (controllers = ['cpu', 'io', 'memory', 'pids']): Promise<Cgroup> => {
    tree = await makeTree({ base: '/svc', controllers });
    return Cgroup.at('/svc', { root: tree.root, fs: tree.fs });
  };
  const limits = { cpu_percent: 25, memory_max: 32 << 20, memory_high: null, pids_max: 20 };

  it('creates each session cgroup under <unit>/sessions with its limits, and kill + remove leaves nothing', async () => {
    const { cgroups } = await SessionCgroups.setup({
      mode: 'required',
      log: silentLogger(),
      base: await base(),
    });
    assert.ok(cgroups !== null);
    const t = tree!;
    assert.equal((await t.read('/svc', 'cgroup.subtree_control')).trim(), 'cpu memory pids');
    assert.equal(
      (await t.read('/svc/sessions', 'cgroup.subtree_control')).trim(),
      'cpu memory pids',
    );

    const cg = await cgroups.create('S1', limits);
    assert.equal(cg.rel, '/svc/sessions/S1');
    assert.equal((await t.read(cg.rel, 'cpu.max')).trim(), '25000 100000');
    assert.equal((await t.read(cg.rel, 'memory.max')).trim(), String(32 << 20));
    assert.equal((await t.read(cg.rel, 'memory.high')).trim(), 'max');
    assert.equal((await t.read(cg.rel, 'pids.max')).trim(), '20');

    await t.place(cg.rel, 4242);
    await cgroups.release(cg);
    assert.equal(await cg.exists(), false);
    await cgroups.release(cg); // gone already: nothing to do
  });

  it('kills and removes session cgroups a previous daemon left behind', async () => {
    const b = await base();
    const left = b.child('sessions').child('old-session');
    await SessionCgroups.setup({ mode: 'required', log: silentLogger(), base: b });
    await left.create();
    await tree!.place(left.rel, 777);
    await SessionCgroups.setup({ mode: 'required', log: silentLogger(), base: b });
    assert.equal(await left.exists(), false);
    assert.equal(await b.child('sessions').exists(), true);
  });

  it('refuses to start without the controllers unless cgroups are optional', async () => {
    const b = await base(['cpu', 'io']);
    await assert.rejects(
      SessionCgroups.setup({ mode: 'required', log: silentLogger(), base: b }),
      /cgroup v2 is required but not usable: controllers memory, pids are not available in .*set \[cgroup\] require = false/,
    );
    const r = await SessionCgroups.setup({ mode: 'optional', log: silentLogger(), base: b });
    assert.equal(r.cgroups, null);
    assert.match(r.problem ?? '', /memory, pids/);
  });

  it('never touches a root that is not a cgroup2 mount', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'hp-not-cgroup-'));
    try {
      await assert.rejects(
        SessionCgroups.setup({ mode: 'required', log: silentLogger(), root: dir }),
        /is not a cgroup2 mount/,
      );
      const r = await SessionCgroups.setup({ mode: 'optional', log: silentLogger(), root: dir });
      assert.equal(r.cgroups, null);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('webterminal reload', () => {
  it('names the keys a reload cannot apply, and only those', () => {
    const a = parse('');
    assert.deepEqual(
      restartOnlyChanges(
        a,
        parse(
          'allowed_host_source_list = ["x.example.com"]\n[sessions]\nttl = "1m"\n' +
            '[sandbox.limits]\npids_max = 9\n[[targets]]\nname = "n"\ntype = "sandbox"\n',
        ),
      ),
      [],
    );
    assert.deepEqual(
      restartOnlyChanges(
        a,
        parse('listen = "127.0.0.1:9"\n[sandbox]\nterm = "vt100"\n[cgroup]\nrequire = false\n'),
      ),
      ['listen', 'sandbox.term', 'cgroup.require'],
    );
  });
});
