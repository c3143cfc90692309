import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRunner, ExecError, findBinary } from '../../../../shared/exec/index.ts';
import { createMemoryLogger } from '../../../../shared/log/index.ts';

const TRUE = '/bin/true';
const FALSE = '/bin/false';
const SLEEP = '/usr/bin/sleep';
const PRINTF = '/usr/bin/printf';
const CAT = '/usr/bin/cat';
const ENV = '/usr/bin/env';
const LS = '/usr/bin/ls';
const SH = '/bin/sh';

async function readAll(r: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

function setup(opts: { defaultTimeoutMs?: number } = {}) {
  const { log, records } = createMemoryLogger();
  const runner = createRunner({
    log,
    allow: [TRUE, FALSE, SLEEP, PRINTF, CAT, ENV, LS, SH],
    ...opts,
  });
  const audits = () => records.filter((r) => r['component'] === 'exec');
  return { runner, records, audits };
}

async function rejection(p: Promise<unknown>): Promise<ExecError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ExecError, `expected an ExecError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to reject');
}

describe('createRunner().run', () => {
  it('returns stdout and writes one audit record with argv, code, signal and duration', async () => {
    const { runner, audits } = setup();
    const r = await runner.run([PRINTF, '%s-%s', 'a', 'b']);
    assert.equal(r.stdout, 'a-b');
    assert.equal(r.code, 0);
    assert.equal(r.signal, null);
    assert.ok(r.durationMs >= 0);
    const recs = audits();
    assert.equal(recs.length, 1);
    const rec = recs[0]!;
    assert.deepEqual(rec['argv'], [PRINTF, '%s-%s', 'a', 'b']);
    assert.equal(rec['code'], 0);
    assert.equal(rec['signal'], null);
    assert.equal(typeof rec['ms'], 'number');
    assert.equal(rec['msg'], 'exec');
  });

  it('puts the first lines of stderr, bounded, into the audit record', async () => {
    const { runner, audits } = setup();
    await runner.run([LS, '/nonexistent-hp-1', '/nonexistent-hp-2'], { okCodes: [2] });
    await rejection(runner.run([CAT, '/nonexistent-hp-3']));
    const recs = audits();
    assert.equal(recs.length, 2);
    const head = recs[0]!['stderrHead'] as string;
    assert.match(head, /nonexistent-hp-1/);
    assert.match(head, /nonexistent-hp-2/);
    assert.match(recs[1]!['stderrHead'] as string, /nonexistent-hp-3: No such file/);
    // nothing on stderr: no head in the record
    await runner.run([PRINTF, 'quiet']);
    assert.equal(audits()[2]!['stderrHead'], undefined);
  });

  it('caps the stderr head at five lines', async () => {
    const { runner, audits } = setup();
    const paths = Array.from({ length: 12 }, (_, i) => `/nonexistent-hp-${i}`);
    await rejection(runner.run([CAT, ...paths]));
    const head = audits()[0]!['stderrHead'] as string;
    assert.equal(head.split('\n').length, 5);
    assert.ok(head.length <= 513);
  });

  it('accepts the exit codes the call site declares', async () => {
    const { runner } = setup();
    const r = await runner.run([FALSE], { okCodes: [0, 1] });
    assert.equal(r.code, 1);
  });

  it('rejects a failing exit with an error carrying argv, code and stderr', async () => {
    const { runner, audits } = setup();
    const err = await rejection(runner.run([CAT, '/nonexistent-hp-x']));
    assert.deepEqual(err.argv, [CAT, '/nonexistent-hp-x']);
    assert.equal(err.code, 1);
    assert.equal(err.signal, null);
    assert.match(err.stderr, /No such file or directory/);
    assert.equal(
      err.message,
      `${CAT} /nonexistent-hp-x: exited 1: ${CAT}: /nonexistent-hp-x: No such file or directory`,
    );
    assert.equal(err.timedOut, false);
    assert.equal(err.aborted, false);
    assert.equal(audits().length, 1);
    assert.equal(audits()[0]!['level'], 'warn');
  });

  it('kills the process with SIGKILL when the timeout passes and says so', async () => {
    const { runner, audits } = setup();
    const t0 = Date.now();
    const err = await rejection(runner.run([SLEEP, '30'], { timeoutMs: 150 }));
    assert.ok(Date.now() - t0 < 5_000);
    assert.equal(err.timedOut, true);
    assert.equal(err.signal, 'SIGKILL');
    assert.equal(err.code, null);
    assert.match(err.message, /timed out after 150 ms/);
    const rec = audits()[0]!;
    assert.equal(rec['timedOut'], true);
    assert.equal(rec['signal'], 'SIGKILL');
  });

  it('uses the runner default timeout when the call sets none', async () => {
    const { runner } = setup({ defaultTimeoutMs: 100 });
    const err = await rejection(runner.run([SLEEP, '30']));
    assert.equal(err.timedOut, true);
  });

  it('kills the process when the AbortSignal fires and rejects with aborted', async () => {
    const { runner, audits } = setup();
    const ac = new AbortController();
    const p = runner.run([SLEEP, '30'], { signal: ac.signal });
    setImmediate(() => {
      ac.abort();
    });
    const err = await rejection(p);
    assert.equal(err.aborted, true);
    assert.equal(err.signal, 'SIGKILL');
    assert.equal(audits()[0]!['aborted'], true);
  });

  it('does not start a process for an already aborted signal', async () => {
    const { runner, audits } = setup();
    const err = await rejection(runner.run([TRUE], { signal: AbortSignal.abort() }));
    assert.equal(err.aborted, true);
    assert.equal(err.notStarted, true);
    assert.equal(audits().length, 1);
  });

  it('refuses a binary outside the allowlist before spawning', async () => {
    const { runner, audits } = setup();
    const err = await rejection(runner.run(['/usr/bin/id']));
    assert.equal(err.notStarted, true);
    assert.match(
      err.message,
      /^\/usr\/bin\/id: refusing \/usr\/bin\/id: not in this runner's allowlist$/,
    );
    assert.equal(audits().length, 1);
    assert.match(audits()[0]!['refused'] as string, /allowlist/);
  });

  it('refuses a relative path even when its name matches an allowed binary', async () => {
    const { runner } = setup();
    const err = await rejection(runner.run(['true']));
    assert.match(err.message, /not an absolute path/);
    const err2 = await rejection(runner.run([]));
    assert.match(err2.message, /empty argv/);
  });

  it('starts children with only PATH and LC_ALL=C plus what the call adds', async () => {
    const { runner } = setup();
    process.env['HP_TEST_LEAK'] = 'leaked';
    try {
      const r = await runner.run([ENV], { env: { EXTRA: 'x y' } });
      const lines = r.stdout.trim().split('\n').sort();
      assert.deepEqual(lines, ['EXTRA=x y', 'LC_ALL=C', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
    } finally {
      delete process.env['HP_TEST_LEAK'];
    }
  });

  it('never goes through a shell: metacharacters reach the binary verbatim', async () => {
    const { runner } = setup();
    const r = await runner.run([PRINTF, '%s', '$(id); `id` | true > /tmp/x']);
    assert.equal(r.stdout, '$(id); `id` | true > /tmp/x');
  });

  it('returns soon after exit even when a grandchild keeps stdout open', async () => {
    const { runner } = setup();
    const t0 = Date.now();
    // the background sleep inherits stdout and outlives the shell by ~3 s
    const r = await runner.run([SH, '-c', 'sleep 3 & echo hi']);
    assert.equal(r.stdout, 'hi\n');
    assert.ok(Date.now() - t0 < 2_900, `took ${Date.now() - t0} ms`);
  });

  it('writes input to stdin and closes it', async () => {
    const { runner } = setup();
    const r = await runner.run([CAT], { input: 'hello\nworld\n' });
    assert.equal(r.stdout, 'hello\nworld\n');
  });

  it('rejects with the reason when the allowed binary cannot be executed', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'hp-exec-'));
    try {
      const missing = path.join(dir, 'missing');
      const noexec = path.join(dir, 'noexec');
      await writeFile(noexec, '#!/bin/true\n');
      await chmod(noexec, 0o644);
      const { log, records } = createMemoryLogger();
      const runner = createRunner({ log, allow: [missing, noexec] });
      const e1 = await rejection(runner.run([missing, 'a']));
      assert.equal(e1.notStarted, true);
      assert.match(e1.message, new RegExp(`^${missing} a: cannot start: .*ENOENT`));
      const e2 = await rejection(runner.run([noexec]));
      assert.match(e2.message, /cannot start: .*EACCES/);
      assert.throws(
        () => runner.spawn([missing]),
        (err: unknown) => {
          assert.ok(err instanceof ExecError);
          assert.match(err.message, /cannot start: .*ENOENT/);
          return true;
        },
      );
      assert.equal(records.filter((r) => r['component'] === 'exec').length, 3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('createRunner().spawn', () => {
  it('hands the child extra pipes as fd 3 and onwards, readable by the parent', async () => {
    const { log } = createMemoryLogger();
    const runner = createRunner({ log, allow: [SH] });
    // a shell only as the test's child: product code never runs one
    const sp = runner.spawn([SH, '-c', 'echo status >&3; echo more >&4; echo out'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      extraPipes: 2,
    });
    assert.equal(sp.extra.length, 2);
    const [fd3, fd4, out] = await Promise.all([
      readAll(sp.extra[0]!),
      readAll(sp.extra[1]!),
      readAll(sp.stdout!),
    ]);
    assert.deepEqual(await sp.exited, { code: 0, signal: null });
    assert.equal(fd3, 'status\n');
    assert.equal(fd4, 'more\n');
    assert.equal(out, 'out\n');
  });

  it('writes the audit record when the process exits, with its stderr head', async () => {
    const { runner, audits } = setup();
    const sp = runner.spawn([CAT, '/nonexistent-hp-spawn']);
    const err: Buffer[] = [];
    sp.stderr!.on('data', (b: Buffer) => err.push(b));
    const ended = once(sp.stderr!, 'end');
    assert.equal(audits().length, 0);
    const exit = await sp.exited;
    assert.deepEqual(exit, { code: 1, signal: null });
    await ended;
    assert.match(Buffer.concat(err).toString(), /nonexistent-hp-spawn/);
    const recs = audits();
    assert.equal(recs.length, 1);
    assert.deepEqual(recs[0]!['argv'], [CAT, '/nonexistent-hp-spawn']);
    assert.equal(recs[0]!['pid'], sp.pid);
    assert.equal(recs[0]!['code'], 1);
  });

  it('kills a spawned process when its AbortSignal fires', async () => {
    const { runner, audits } = setup();
    const ac = new AbortController();
    const sp = runner.spawn([SLEEP, '30'], { signal: ac.signal });
    ac.abort();
    assert.deepEqual(await sp.exited, { code: null, signal: 'SIGKILL' });
    assert.equal(audits()[0]!['aborted'], true);
  });

  it('refuses a binary outside the allowlist synchronously', () => {
    const { runner } = setup();
    assert.throws(() => runner.spawn(['/usr/bin/id']), /not in this runner's allowlist/);
  });
});

describe('findBinary', () => {
  it('finds a binary in the standard directories as an absolute path', async () => {
    const p = await findBinary('ip');
    assert.ok(p === '/usr/sbin/ip' || p === '/sbin/ip' || p === '/usr/bin/ip' || p === '/bin/ip');
    assert.equal(await findBinary('sleep', ['/nonexistent-hp', '/usr/bin']), '/usr/bin/sleep');
  });

  it('rejects naming the binary and the directories searched', async () => {
    await assert.rejects(
      findBinary('no-such-binary-hp', ['/usr/bin', '/bin']),
      /finding binary no-such-binary-hp: not an executable file in \/usr\/bin, \/bin/,
    );
  });
});
