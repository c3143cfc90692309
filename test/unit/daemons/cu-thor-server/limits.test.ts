import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyLimits,
  controllersFor,
  cpuQuotaUs,
  limitWrites,
  resolveLimits,
  type LimitTarget,
} from '../../../../daemons/cu-thor-server/limits.ts';
import { ExecutorError, type JobLimits } from '../../../../daemons/cu-thor-server/types.ts';

const render = (l: JobLimits) => limitWrites(l).map((w) => `${w.file} ${w.value}`);

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ExecutorError);
    assert.equal(err.code, 'invalid_argument');
    assert.match(err.message, pattern);
    return true;
  });
}

describe('resolveLimits', () => {
  const defaults: JobLimits = { cpuPercent: 50, memoryMaxBytes: 256 << 20 };
  const max: JobLimits = {
    cpuPercent: 200,
    memoryMaxBytes: 1 << 30,
    memoryHighBytes: 1 << 30,
    pidsMax: 1000,
    io: [{ device: '8:0', rbps: 100 << 20, wbps: 50 << 20 }],
  };

  const cases: { name: string; req: JobLimits | undefined; want: JobLimits }[] = [
    { name: 'no request takes the defaults', req: undefined, want: defaults },
    {
      name: 'requested fields override defaults and the rest stay',
      req: { cpuPercent: 150, pidsMax: 10 },
      want: { cpuPercent: 150, memoryMaxBytes: 256 << 20, pidsMax: 10 },
    },
    {
      name: 'io limits within the device maximum are kept',
      req: { io: [{ device: '8:0', rbps: 1 << 20 }] },
      want: { ...defaults, io: [{ device: '8:0', rbps: 1 << 20 }] },
    },
    {
      name: 'io on a device without a maximum is allowed',
      req: { io: [{ device: '253:1', wbps: 7 }] },
      want: { ...defaults, io: [{ device: '253:1', wbps: 7 }] },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(resolveLimits(c.req, defaults, max), c.want);
    });
  }

  it('refuses a value above the maximum and names the field and the maximum', () => {
    rejects(
      () => resolveLimits({ cpuPercent: 300 }, defaults, max),
      /cpuPercent 300 .*maximum of 200/,
    );
    rejects(
      () => resolveLimits({ memoryMaxBytes: 2 * 2 ** 30 }, defaults, max),
      /memoryMaxBytes .*maximum/,
    );
    rejects(
      () => resolveLimits({ io: [{ device: '8:0', rbps: 200 << 20 }] }, defaults, max),
      /io rbps of 8:0/,
    );
  });

  it('refuses zero, negative, fractional and non-numeric values', () => {
    rejects(() => resolveLimits({ cpuPercent: 0 }, defaults, max), /cpuPercent must be a positive/);
    rejects(() => resolveLimits({ pidsMax: -1 }, defaults, max), /pidsMax must be a positive/);
    rejects(() => resolveLimits({ memoryMaxBytes: 1.5 }, defaults, max), /whole number/);
    rejects(
      () => resolveLimits({ memoryHighBytes: 'x' as unknown as number }, defaults, max),
      /memoryHighBytes/,
    );
    rejects(
      () => resolveLimits({ io: [{ device: '8:0' }] }, defaults, max),
      /neither rbps nor wbps/,
    );
  });

  it('resolves device paths through the resolver and merges with default io of that device', () => {
    const got = resolveLimits(
      { io: [{ device: '/dev/vda', wbps: 5 }] },
      { io: [{ device: '254:0', rbps: 9 }] },
      {},
      (d) => (d === '/dev/vda' ? '254:0' : assert.fail(`unexpected ${d}`)),
    );
    assert.deepEqual(got, { io: [{ device: '254:0', rbps: 9, wbps: 5 }] });
  });

  it('turns a resolver failure into invalid_argument naming the device', () => {
    rejects(
      () =>
        resolveLimits({ io: [{ device: '/dev/nope', rbps: 1 }] }, {}, {}, () => {
          throw new Error('ENOENT');
        }),
      /resolving block device "\/dev\/nope": ENOENT/,
    );
  });

  it('a resolver failure for a long device path names it once, cut short', () => {
    const device = '/dev/' + 'x'.repeat(10_000);
    assert.throws(
      () =>
        resolveLimits({ io: [{ device, rbps: 1 }] }, {}, {}, (d) => {
          throw Object.assign(new Error(`finding the device number of ${d}: ENOENT: ${d}`), {
            code: 'ENOENT',
          });
        }),
      (err: Error) => {
        assert.match(err.message, /resolving block device "\/dev\/x+…": ENOENT$/);
        assert.ok(err.message.length < 320, `message of ${err.message.length} characters`);
        return true;
      },
    );
  });
});

describe('limitWrites', () => {
  it('renders every limit as the cgroup file content the kernel takes', () => {
    assert.deepEqual(
      render({
        cpuPercent: 150,
        memoryMaxBytes: 1048576,
        memoryHighBytes: 524288,
        pidsMax: 64,
        io: [
          { device: '8:0', rbps: 1000 },
          { device: '8:16', wbps: 2000 },
        ],
      }),
      [
        'cpu.max 150000 100000',
        'memory.max 1048576',
        'memory.high 524288',
        'pids.max 64',
        'io.max 8:0 rbps=1000 wbps=max',
        'io.max 8:16 rbps=max wbps=2000',
      ],
    );
  });

  it('writes nothing for no limits, and never a cpu quota under the kernel minimum', () => {
    assert.deepEqual(render({}), []);
    assert.equal(cpuQuotaUs(0.1), 1000);
    assert.deepEqual(controllersFor({ cpuPercent: 10, io: [{ device: '1:2', rbps: 1 }] }), [
      'cpu',
      'io',
    ]);
  });

  it('applyLimits calls the cgroup setters with the same values', async () => {
    const calls: string[] = [];
    const target: LimitTarget = {
      setCpuMax: (q, p) => (calls.push(`cpu ${q} ${p}`), Promise.resolve()),
      setMemoryMax: (b) => (calls.push(`mem ${b}`), Promise.resolve()),
      setMemoryHigh: (b) => (calls.push(`high ${b}`), Promise.resolve()),
      setPidsMax: (n) => (calls.push(`pids ${n}`), Promise.resolve()),
      setIoMax: (l) => (calls.push(`io ${JSON.stringify(l)}`), Promise.resolve()),
    };
    await applyLimits(target, {
      cpuPercent: 25,
      memoryMaxBytes: 10,
      pidsMax: 3,
      io: [{ device: '8:0', rbps: 1 }],
    });
    assert.deepEqual(calls, [
      'cpu 25000 100000',
      'mem 10',
      'pids 3',
      'io [{"device":"8:0","rbps":1}]',
    ]);
  });
});
