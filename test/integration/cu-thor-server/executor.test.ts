// The executor for real on the host: unshare + hostplane-nsinit, namespaces only (no cgroup v2).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Executor } from '../../../daemons/cu-thor-server/executor.ts';
import { ExecutorError } from '../../../daemons/cu-thor-server/types.ts';
import {
  eventually,
  findMarked,
  makeExecutor,
  outputText,
  setupEnv,
  waitForOutput,
  type Env,
} from './executor-helpers.ts';

let env: Env;
let ex: Executor;
const owner = 'client1';

before(async () => {
  env = await setupEnv();
  ({ ex } = await makeExecutor(env, { stopGraceMs: 400, maxConcurrent: 50 }));
});
after(async () => {
  // ex is unset when before() failed
  await (ex as Executor | undefined)?.close({ stopJobs: true });
});

async function rejectsWith(p: Promise<unknown>, code: string, msg: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ExecutorError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, msg);
    return true;
  });
}

describe('running a job', () => {
  it('runs echo and keeps its output, exit code 0', async () => {
    const cmd = await ex.start('echo', ['hello', 'world'], { owner });
    const info = await cmd.wait();
    assert.equal(info.status, 'exited');
    assert.equal(info.exitCode, 0);
    assert.equal(info.signal, null);
    assert.equal(info.outputBytes, 12);
    assert.ok(info.endedAt !== null && info.endedAt >= info.startedAt);
    assert.deepEqual(await outputText(cmd), ['o:hello world\n']);
  });

  it('tags what the job writes to stdout and to stderr with its stream', async () => {
    const cmd = await ex.start('sh', ['-c', 'echo out1; echo err1 >&2; echo out2'], { owner });
    await cmd.wait();
    // two pipes: the order between them is only as good as the reads, within one it is exact
    const chunks = await outputText(cmd);
    const of = (tag: string) => chunks.filter((c) => c.startsWith(tag)).map((c) => c.slice(2));
    assert.equal(of('o:').join(''), 'out1\nout2\n');
    assert.equal(of('e:').join(''), 'err1\n');
  });

  it('reports the exit code of a failing command', async () => {
    const info = await (await ex.start('sh', ['-c', 'exit 7'], { owner })).wait();
    assert.equal(info.status, 'exited');
    assert.equal(info.exitCode, 7);
  });

  it('runs in its own PID and network namespaces, with a minimal environment, in /', async () => {
    const cmd = await ex.start(
      'sh',
      [
        '-c',
        'echo pid=$$; ls /proc | grep -c "^[0-9]"; ip -o link | cut -d" " -f2,3; pwd; env | sort',
      ],
      { owner },
    );
    await cmd.wait();
    const [out] = await outputText(cmd);
    const lines = (out ?? '').slice(2).trim().split('\n');
    // the init is PID 1, the command PID 2; /proc holds init, sh, ls, grep at most
    assert.equal(lines[0], 'pid=2');
    assert.ok(Number(lines[1]) <= 4, `processes visible: ${lines[1]}`);
    assert.equal(lines[2], 'lo: <LOOPBACK,UP,LOWER_UP>', 'only lo, and it is up');
    assert.equal(lines[3], '/');
    const envVars = lines.slice(4).filter((l) => !/^(PWD|SHLVL|_)=/.test(l));
    assert.deepEqual(envVars, [
      'LC_ALL=C',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ]);
  });

  it('gives every job an empty private tmpfs on /tmp, /var/tmp and /dev/shm, as PrivateTmp= does', async () => {
    const cmd = await ex.start(
      'sh',
      ['-c', 'for d in /tmp /var/tmp /dev/shm; do echo $d $(stat -f -c %T $d) $(ls -A $d); done'],
      { owner },
    );
    await cmd.wait();
    const [out] = await outputText(cmd);
    assert.deepEqual((out ?? '').slice(2).trim().split('\n'), [
      '/tmp tmpfs',
      '/var/tmp tmpfs',
      '/dev/shm tmpfs',
    ]);
  });

  it('marks a missing binary failed_to_start with a reason naming the command', async () => {
    const info = await (await ex.start('no-such-binary-hostplane', [], { owner })).wait();
    assert.equal(info.status, 'failed_to_start');
    assert.equal(info.reason, 'starting "no-such-binary-hostplane": No such file or directory');
  });

  it('lists jobs and finds them by id, for their owner only', async () => {
    const cmd = await ex.start('true', [], { owner: 'client2' });
    await cmd.wait();
    assert.equal(ex.get(cmd.id)?.id, cmd.id);
    assert.equal(ex.get(cmd.id, 'client2')?.id, cmd.id);
    assert.equal(ex.get(cmd.id, owner), undefined);
    assert.deepEqual(
      ex.list('client2').map((i) => i.id),
      [cmd.id],
    );
    assert.ok(ex.list().length > 1);
    assert.equal(ex.cgroupsEnabled, false);
  });
});

describe('cgroup mode', () => {
  it('refuses to create an executor when cgroups are required but not usable', async () => {
    const root = await mkdtemp(join(tmpdir(), 'cu-thor-nocgroup-'));
    await rejectsWith(
      makeExecutor(env, { cgroup: { mode: 'required', root } }),
      'unavailable',
      /cgroup v2 is required but not usable: .*not a cgroup2 mount.*require = false/,
    );
  });

  it('runs namespaces only when cgroups are optional, and says why', () => {
    assert.equal(ex.cgroupsEnabled, false);
    assert.match(ex.cgroupProblem ?? '', /not a cgroup2 mount/);
  });
});

describe('refusing bad starts', () => {
  it('refuses an empty command', async () => {
    await rejectsWith(ex.start('', [], { owner }), 'invalid_argument', /command is empty/);
  });

  it('refuses oversized arguments', async () => {
    await rejectsWith(
      ex.start('echo', ['x'.repeat(200 * 1024)], { owner }),
      'invalid_argument',
      /maximum is 131072/,
    );
  });

  it('refuses a limit above the configured maximum', async () => {
    const { ex: limited } = await makeExecutor(env, {
      limits: { defaults: {}, max: { cpuPercent: 100 }, total: {} },
    });
    await rejectsWith(
      limited.start('true', [], { owner, limits: { cpuPercent: 150 } }),
      'invalid_argument',
      /cpuPercent 150 is above the configured maximum of 100/,
    );
    await limited.close();
  });

  it('refuses a start beyond max_concurrent, and accepts again once a job ended', async () => {
    const { ex: small } = await makeExecutor(env, { maxConcurrent: 2, stopGraceMs: 200 });
    const a = await small.start('sleep', ['100'], { owner });
    const b = await small.start('sleep', ['100'], { owner });
    await rejectsWith(small.start('true', [], { owner }), 'resource_exhausted', /maximum is 2/);
    await a.stop();
    const c = await small.start('true', [], { owner });
    assert.equal((await c.wait()).status, 'exited');
    await b.stop();
    await small.close();
  });
});

describe('shutting down', () => {
  it('a start still resolving its devices when close() begins never launches its job', async () => {
    let resolved = (): void => undefined;
    const resolving = new Promise<void>((r) => {
      resolved = r;
    });
    const { ex: closing } = await makeExecutor(env, {
      resolveDevice: async () => {
        resolved();
        await new Promise((r) => setTimeout(r, 300));
        return '254:0';
      },
    });
    const started = closing.start('sleep', ['4242'], {
      owner,
      limits: { io: [{ device: '/dev/slow', rbps: 1_000_000 }] },
    });
    await resolving;
    const closed = closing.close({ stopJobs: true });
    try {
      await assert.rejects(started, (err: ExecutorError) => {
        assert.equal(err.code, 'unavailable');
        return true;
      });
      await closed;
      assert.deepEqual(
        closing.list().filter((i) => i.status === 'running'),
        [],
      );
    } finally {
      await closed;
      // without the fix the job is running here: stop it so the test leaves nothing behind
      for (const i of closing.list()) await closing.get(i.id)?.stop();
    }
  });
});

describe('stopping a job', () => {
  it('delivers SIGTERM to the command: its handler runs and it exits cleanly → stopped', async () => {
    const cmd = await ex.start(
      'bash',
      ['-c', 'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.05; done'],
      { owner },
    );
    await waitForOutput(cmd, 'ready');
    const info = await cmd.stop();
    assert.equal(info.status, 'stopped');
    assert.equal(info.exitCode, 3);
    assert.deepEqual(await outputText(cmd), ['o:ready\ngot-term\n']);
  });

  it('a stop right after the start still delivers SIGTERM: the job ends stopped, not killed after the grace', async () => {
    // the SIGTERM used to reach the init before it blocked signals, and the kernel dropped it
    const { ex: slow } = await makeExecutor(env, { stopGraceMs: 3_000 });
    try {
      for (let i = 0; i < 10; i++) {
        const cmd = await slow.start(
          'sh',
          ['-c', 'trap "exit 0" TERM; while :; do sleep 0.05; done'],
          { owner },
        );
        const t0 = Date.now();
        const info = await cmd.stop();
        const ms = Date.now() - t0;
        assert.equal(info.status, 'stopped', `attempt ${i}: ${info.status} after ${ms} ms`);
        assert.ok(ms < 2_000, `attempt ${i}: stopped after ${ms} ms`);
      }
    } finally {
      await slow.close({ stopJobs: true });
    }
  });

  it('a command that ignores SIGTERM is killed after the grace period → killed', async () => {
    const cmd = await ex.start(
      'bash',
      ['-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'],
      {
        owner,
      },
    );
    await waitForOutput(cmd, 'ready');
    const t0 = Date.now();
    const info = await cmd.stop();
    const took = Date.now() - t0;
    assert.equal(info.status, 'killed');
    assert.equal(info.signal, 'SIGKILL');
    assert.ok(took >= 350, `killed after ${took} ms, grace is 400 ms`);
  });

  it('nothing of a stopped job survives, background processes included', async () => {
    const marker = `${100000 + randomInt(1e6)}`;
    const cmd = await ex.start(
      'sh',
      ['-c', `sleep ${marker} & (sleep ${marker} &) ; trap "" TERM; echo ready; wait`],
      { owner },
    );
    await waitForOutput(cmd, 'ready');
    const during = await findMarked(marker);
    assert.equal(during.descendants.length, 2, 'both sleeps run below this process');
    const info = await cmd.stop();
    assert.equal(info.status, 'killed');
    await eventually(async () => (await findMarked(marker)).all.length === 0, 2_000);
  });

  it('stopping an ended job returns its final state', async () => {
    const cmd = await ex.start('true', [], { owner });
    const done = await cmd.wait();
    assert.deepEqual(await cmd.stop(), done);
  });
});
