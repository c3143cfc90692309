// shared/cgroup against the real kernel: limits are enforced, counters move, kill ends a tree.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { blockDeviceNumber, Cgroup } from '../../shared/cgroup/index.ts';
import { BIN, spawnIn, testCgroup, vmRunner, vmSkipReason, waitFor } from './helpers.ts';

const skip = await vmSkipReason();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
const MiB = 1024 * 1024;

describe('shared/cgroup on the kernel', { skip, timeout: 240_000 }, () => {
  const runner = skip === false ? vmRunner() : undefined;
  const made: Cgroup[] = [];
  const make = async (name: string): Promise<Cgroup> => {
    const cg = await testCgroup(name);
    made.push(cg);
    return cg;
  };
  after(async () => {
    for (const cg of made) {
      await cg.kill().catch(() => undefined);
      await cg.remove({ timeoutMs: 10_000 });
    }
  });

  it('memory.max gets a memory hog OOM-killed and memory.events counts the kill', async () => {
    const cg = await make('mem');
    await cg.setMemoryMax(16 * MiB);
    await cg.setMemorySwapMax(0);
    // tail keeps the whole "line" of /dev/zero in memory: it grows until something stops it
    const hog = await spawnIn(runner!, cg, [BIN.tail, '/dev/zero']);
    const end = await hog.exited;
    assert.equal(end.signal, 'SIGKILL');
    const events = await cg.memoryEvents();
    assert.ok(events.oomKill >= 1, `oom_kill ${events.oomKill}`);
    assert.ok(events.max >= 1, `max ${events.max}`);
    const peak = await cg.memoryPeak();
    assert.ok(peak !== null && peak <= 16 * MiB && peak > 8 * MiB, `memory.peak ${peak}`);
  });

  it('cpu.max at 10% throttles a busy loop', async () => {
    const cg = await make('cpu');
    await cg.setCpuMax(10_000, 100_000);
    const t0 = Date.now();
    const busy = await spawnIn(runner!, cg, [BIN.yes]);
    // 30 enforcement periods of 100 ms
    const stat = await waitFor('30 cpu.max periods', async () => {
      const s = await cg.cpuStat();
      return s.nrPeriods >= 30 ? s : undefined;
    });
    const elapsedUs = (Date.now() - t0) * 1000;
    busy.kill('SIGKILL');
    await busy.exited;
    assert.ok(stat.nrThrottled > 0, `nr_throttled ${stat.nrThrottled}`);
    assert.ok(stat.throttledUsec > 0, `throttled_usec ${stat.throttledUsec}`);
    // a free busy loop would use ~100% of one CPU; at 10% it stays far below half
    assert.ok(stat.usageUsec < elapsedUs * 0.4, `used ${stat.usageUsec} µs of ${elapsedUs} µs`);
  });

  it('io.max rbps limits direct reads from the block device', async () => {
    const cg = await make('io');
    const dev = await blockDeviceNumber('/dev/vda');
    await cg.setIoMax([{ device: dev, rbps: MiB }]);
    assert.match(await readFile(`${cg.path}/io.max`, 'utf8'), new RegExp(`^${dev} rbps=1048576 `));
    const t0 = Date.now();
    const dd = await spawnIn(runner!, cg, [
      BIN.dd,
      'if=/dev/vda',
      'of=/dev/null',
      'iflag=direct',
      'bs=1M',
      'count=4',
      'skip=64',
    ]);
    const end = await dd.exited;
    const ms = Date.now() - t0;
    assert.equal(end.code, 0);
    // 4 MiB at 1 MiB/s: about 3-4 s (the throttle lets the first slice through)
    assert.ok(ms >= 2500, `4 MiB read in ${ms} ms under rbps=1MiB/s`);
    const ioStat = await readFile(`${cg.path}/io.stat`, 'utf8');
    const rbytes = Number(new RegExp(`^${dev} rbytes=(\\d+)`, 'm').exec(ioStat)?.[1] ?? 0);
    assert.ok(rbytes >= 4 * MiB, `io.stat rbytes ${rbytes}`);
  });

  it('io.max leaves a device alone once set back to max', async () => {
    const cg = await make('io-free');
    const dev = await blockDeviceNumber('/dev/vda');
    await cg.setIoMax([{ device: dev, rbps: MiB }]);
    await cg.setIoMax([{ device: dev }]);
    const text = await readFile(`${cg.path}/io.max`, 'utf8');
    assert.equal(text.includes(dev), false, `io.max still lists ${dev}: ${text}`);
  });

  it('pids.max refuses forks beyond the limit', async () => {
    const cg = await make('pids');
    await cg.setPidsMax(3);
    const child = await spawnIn(runner!, cg, [
      BIN.sh,
      '-c',
      'for i in 1 2 3 4 5 6; do sleep 30 & done; wait',
    ]);
    const events = await waitFor('a refused fork in pids.events', async () => {
      const text = await readFile(`${cg.path}/pids.events`, 'utf8');
      const n = Number(/^max (\d+)/m.exec(text)?.[1] ?? 0);
      return n > 0 ? n : undefined;
    });
    assert.ok(events > 0);
    assert.ok((await cg.pidsCurrent()) <= 3);
    await cg.kill();
    await child.exited;
  });

  it('cgroup.kill ends every process of a tree, in child cgroups too, and the cgroup can go', async () => {
    const cg = await make('kill');
    const inner = cg.child('inner');
    await inner.create();
    const tree = await spawnIn(runner!, cg, [
      BIN.sh,
      '-c',
      'sleep 1000 & sleep 1000 & (sleep 1000 & sleep 1000 & wait) & wait',
    ]);
    const lone = await spawnIn(runner!, inner, [BIN.sleep, '1000']);
    await waitFor('6 processes in the tree', async () =>
      (await cg.procs()).length >= 6 ? true : undefined,
    );
    const before = [...(await cg.procs()), ...(await inner.procs())];
    await cg.kill();
    const [a, b] = await Promise.all([tree.exited, lone.exited]);
    assert.equal(a.signal, 'SIGKILL');
    assert.equal(b.signal, 'SIGKILL');
    await waitFor('the cgroup to empty', async () => ((await cg.populated()) ? undefined : true));
    // orphans are reaped by PID 1 a moment after they leave the cgroup
    await waitFor('every killed pid to be gone', () =>
      Promise.resolve(before.every((pid) => !alive(pid)) ? true : undefined),
    );
    await cg.remove({ timeoutMs: 10_000 });
    assert.equal(await cg.exists(), false);
  });
});
