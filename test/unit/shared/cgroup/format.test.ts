import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatCpuMax,
  formatIoMax,
  formatLimit,
  parseCpuStat,
  parseMemoryEvents,
  parseProcCgroup,
} from '../../../../shared/cgroup/index.ts';

describe('cgroup file formats', () => {
  const cpuMax = [
    {
      name: 'no quota is "max" with the default period',
      quota: null,
      period: undefined,
      want: 'max 100000',
    },
    {
      name: 'half a CPU is 50000 of 100000',
      quota: 50_000,
      period: undefined,
      want: '50000 100000',
    },
    { name: 'an explicit period is kept', quota: 20_000, period: 10_000, want: '20000 10000' },
  ];
  for (const t of cpuMax) {
    it(`cpu.max: ${t.name}`, () => {
      assert.equal(formatCpuMax(t.quota, t.period), t.want);
    });
  }

  it('cpu.max rejects quotas and periods the kernel would refuse', () => {
    assert.throws(() => formatCpuMax(999), /at least 1000/);
    assert.throws(() => formatCpuMax(1.5e3 + 0.5), /integer/);
    assert.throws(() => formatCpuMax(null, 999), /period/);
    assert.throws(() => formatCpuMax(50_000, 2_000_000), /period/);
  });

  it('limits are "max" for null and the integer otherwise, never negative or fractional', () => {
    assert.equal(formatLimit('memory.max', null), 'max');
    assert.equal(formatLimit('memory.max', 268435456), '268435456');
    assert.throws(() => formatLimit('memory.max', -1), /memory.max must be a non-negative integer/);
    assert.throws(() => formatLimit('pids.max', 2.5), /pids.max/);
  });

  it('io.max states all four limits of a device, "max" where none is given', () => {
    assert.equal(
      formatIoMax({ device: '254:0', rbps: 1048576 }),
      '254:0 rbps=1048576 wbps=max riops=max wiops=max',
    );
    assert.equal(
      formatIoMax({ device: '8:16', rbps: 1, wbps: 2, riops: 3, wiops: 4 }),
      '8:16 rbps=1 wbps=2 riops=3 wiops=4',
    );
  });

  it('io.max refuses a device that is not MAJ:MIN, so nothing odd reaches the kernel', () => {
    assert.throws(() => formatIoMax({ device: '/dev/vda' }), /MAJ:MIN/);
    assert.throws(() => formatIoMax({ device: '8:0 rbps=1\n9:0' }), /MAJ:MIN/);
  });

  it('cpu.stat with the cpu controller gives throttling counters', () => {
    const text =
      'usage_usec 2270000\nuser_usec 2000000\nsystem_usec 270000\ncore_sched.force_idle_usec 0\nnr_periods 40\nnr_throttled 37\nthrottled_usec 3400000\nnr_bursts 0\nburst_usec 0\n';
    assert.deepEqual(parseCpuStat(text), {
      usageUsec: 2270000,
      userUsec: 2000000,
      systemUsec: 270000,
      nrPeriods: 40,
      nrThrottled: 37,
      throttledUsec: 3400000,
    });
  });

  it('cpu.stat without the cpu controller reads zero throttling', () => {
    const s = parseCpuStat('usage_usec 15\nuser_usec 10\nsystem_usec 5\n');
    assert.equal(s.usageUsec, 15);
    assert.equal(s.nrThrottled, 0);
    assert.equal(s.nrPeriods, 0);
  });

  it('memory.events maps oom_kill to oomKill', () => {
    assert.deepEqual(
      parseMemoryEvents('low 0\nhigh 12\nmax 40\noom 2\noom_kill 1\noom_group_kill 0\n'),
      {
        low: 0,
        high: 12,
        max: 40,
        oom: 2,
        oomKill: 1,
      },
    );
  });

  it('/proc/self/cgroup must be a single v2 line', () => {
    assert.equal(
      parseProcCgroup('0::/system.slice/cu-thor-server.service\n'),
      '/system.slice/cu-thor-server.service',
    );
    assert.equal(parseProcCgroup('0::/\n'), '/');
    assert.throws(
      () => parseProcCgroup('12:memory:/user.slice\n0::/user.slice/session-1.scope\n'),
      /not a pure cgroup v2 process.*hybrid/,
    );
    assert.throws(() => parseProcCgroup('1:name=systemd:/x\n'), /not a pure cgroup v2/);
  });
});
