// The executor's cgroup limits for real (inside the test VM: systemd, cgroup v2). The executor
// works under a cgroup this test creates; skipped where cgroup v2 controllers are not usable.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Cgroup } from '../../shared/cgroup/index.ts';
import { BIN, spawnIn, testCgroup, vmSkipReason } from './helpers.ts';
import { createRunner, findBinary } from '../../shared/exec/index.ts';
import { silentLogger } from '../../shared/log/index.ts';
import { ensureNsInit, nsInitPath } from '../../shared/ns/index.ts';
import { Executor, type ExecutorOptions } from '../../daemons/cu-thor-server/executor.ts';
import type { Command, JobLimits } from '../../daemons/cu-thor-server/types.ts';

const ROOT = '/sys/fs/cgroup';
const skip = await vmSkipReason();

const log = silentLogger();
const owner = 'vm-test';
let base: Cgroup;
let stateDir: string;
let opts: ExecutorOptions;
const executors: Executor[] = [];

async function executor(limits: Partial<ExecutorOptions['limits']> = {}): Promise<Executor> {
  const ex = await Executor.create({
    ...opts,
    limits: { defaults: {}, max: {}, total: {}, ...limits },
  });
  executors.push(ex);
  return ex;
}

async function stdoutOf(cmd: Command): Promise<string> {
  let s = '';
  for await (const c of cmd.output()) if (c.kind === 'data') s += c.data.toString();
  return s;
}

async function waitForOutput(cmd: Command, text: string): Promise<void> {
  let seen = '';
  for await (const c of cmd.output()) {
    if (c.kind === 'data') seen += c.data.toString();
    if (seen.includes(text)) return;
  }
  throw new Error(`job ended without printing ${text}`);
}

describe('job limits under cgroup v2', { skip, timeout: 10 * 60_000 }, () => {
  before(async () => {
    base = await testCgroup('cu-thor');
    stateDir = await mkdtemp(join(tmpdir(), 'cu-thor-vm-'));
    const unshare = await findBinary('unshare');
    let nsinit = nsInitPath();
    if (!existsSync(nsinit)) {
      nsinit = await ensureNsInit(createRunner({ log, allow: [await findBinary('gcc')] }));
    }
    opts = {
      runner: createRunner({ log, allow: [unshare] }),
      log,
      stateDir,
      cgroup: { mode: 'required', base },
      limits: { defaults: {}, max: {}, total: {} },
      maxConcurrent: 20,
      stopGraceMs: 1_000,
      maxOutputBytes: 16 << 20,
      nsinit,
      unshare,
    };
  });

  after(async () => {
    for (const ex of executors) await ex.close({ stopJobs: true });
    await base.kill().catch(() => undefined);
    await base.remove({ timeoutMs: 10_000 });
    await rm(stateDir, { recursive: true, force: true });
  });

  it('the job is inside its own cgroup before the command runs', async () => {
    const ex = await executor();
    assert.equal(ex.cgroupsEnabled, true);
    const cmd = await ex.start('cat', ['/proc/self/cgroup'], { owner });
    const info = await cmd.wait();
    assert.equal(info.status, 'exited');
    assert.equal(await stdoutOf(cmd), `0::${base.rel}/jobs/${cmd.id}\n`);
    assert.equal(existsSync(`${base.path}/jobs/${cmd.id}`), false, 'the job cgroup is removed');
  });

  it('applies the total limits to the outer jobs cgroup', async () => {
    const total: JobLimits = { memoryMaxBytes: 512 << 20, pidsMax: 500, cpuPercent: 150 };
    await executor({ total });
    assert.equal(
      (await readFile(`${base.path}/jobs/memory.max`, 'utf8')).trim(),
      String(512 << 20),
    );
    assert.equal((await readFile(`${base.path}/jobs/pids.max`, 'utf8')).trim(), '500');
    assert.equal((await readFile(`${base.path}/jobs/cpu.max`, 'utf8')).trim(), '150000 100000');
  });

  it('memory.max OOM-kills a memory hog and the status says so', async () => {
    const ex = await executor({ max: { memoryMaxBytes: 1 << 30 } });
    // tail looks for the last newline of /dev/zero and buffers forever
    const cmd = await ex.start('tail', ['/dev/zero'], {
      owner,
      limits: { memoryMaxBytes: 32 << 20 },
    });
    const info = await cmd.wait();
    assert.equal(info.status, 'oom_killed');
    assert.equal(info.signal, 'SIGKILL');
    assert.ok((info.usage.memoryPeakBytes ?? 0) > 16 << 20, `peak ${info.usage.memoryPeakBytes}`);
    assert.ok((info.usage.memoryPeakBytes ?? 0) <= 33 << 20, `peak ${info.usage.memoryPeakBytes}`);
  });

  it('cpu.max throttles a busy loop', async () => {
    const ex = await executor();
    const cmd = await ex.start(
      'sh',
      ['-c', 'echo ready; end=$(($(date +%s) + 3)); while [ $(date +%s) -lt $end ]; do :; done'],
      { owner, limits: { cpuPercent: 10 } },
    );
    await waitForOutput(cmd, 'ready');
    const cg = Cgroup.at(`${base.rel}/jobs/${cmd.id}`, { root: ROOT });
    assert.equal((await readFile(`${cg.path}/cpu.max`, 'utf8')).trim(), '10000 100000');
    await new Promise((r) => setTimeout(r, 1_500));
    const stat = await cg.cpuStat();
    assert.ok(stat.nrThrottled > 0, `nr_throttled ${stat.nrThrottled}`);
    const info = await cmd.wait();
    assert.equal(info.status, 'exited');
    const wallUs = (info.endedAt!.getTime() - info.startedAt.getTime()) * 1000;
    // generous: 10% of one cpu, plus the slack of periods at the start and the end
    assert.ok(info.usage.cpuUsec! < wallUs * 0.3, `cpu ${info.usage.cpuUsec} us of ${wallUs} us`);
  });

  it('io.max limits reads from a block device', async () => {
    const device = ['/dev/vda', '/dev/sda', '/dev/nvme0n1'].find((d) => existsSync(d));
    assert.ok(device !== undefined, 'the VM has a disk');
    const ex = await executor();
    const mib = 4;
    const cmd = await ex.start(
      'dd',
      [`if=${device}`, 'of=/dev/null', 'bs=1M', `count=${mib}`, 'iflag=direct'],
      { owner, limits: { io: [{ device, rbps: 1 << 20 }] } },
    );
    const info = await cmd.wait();
    assert.equal(info.status, 'exited', await stdoutOf(cmd));
    const seconds = (info.endedAt!.getTime() - info.startedAt.getTime()) / 1000;
    // 4 MiB at 1 MiB/s: the throttle lets a first slice through, so allow one second of burst
    assert.ok(seconds >= mib - 1.5, `read ${mib} MiB in ${seconds} s under rbps=1MiB`);
  });

  it('stop kills the whole cgroup after the grace period and removes it', async () => {
    const ex = await executor();
    const cmd = await ex.start(
      'sh',
      ['-c', 'trap "" TERM; sleep 1000 & sleep 1000 & echo ready; wait'],
      { owner },
    );
    await waitForOutput(cmd, 'ready');
    const info = await cmd.stop();
    assert.equal(info.status, 'killed');
    assert.equal(existsSync(`${base.path}/jobs/${cmd.id}`), false);
    assert.ok(info.usage.cpuUsec !== null);
  });

  it('a restart removes job cgroups left behind, with their processes', async () => {
    await executor();
    const stray = Cgroup.at(`${base.rel}/jobs/${randomUUID()}`, { root: ROOT });
    await stray.create();
    const sleeper = await spawnIn(createRunner({ log, allow: [BIN.sh, BIN.sleep] }), stray, [
      BIN.sleep,
      '1000',
    ]);
    await executor(); // the restart
    assert.equal(existsSync(stray.path), false);
    const exit = await sleeper.exited;
    assert.equal(exit.signal, 'SIGKILL');
  });
});
