// Output of real jobs: many readers, stalled readers, the per-job cap.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Executor } from '../../../daemons/cu-thor-server/executor.ts';
import { makeExecutor, outputText, setupEnv, type Env } from './executor-helpers.ts';
import type { Command } from '../../../daemons/cu-thor-server/types.ts';

let env: Env;
let ex: Executor;
const owner = 'client1';

before(async () => {
  env = await setupEnv();
  ({ ex } = await makeExecutor(env));
});
after(async () => {
  // ex is unset when before() failed
  await (ex as Executor | undefined)?.close({ stopJobs: true });
});

async function digest(cmd: Command): Promise<{ stdout: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of cmd.output()) {
    if (c.kind !== 'data') assert.fail(`unexpected ${c.kind} chunk`);
    assert.equal(c.stream, 'stdout');
    h.update(c.data);
    bytes += c.data.length;
  }
  return { stdout: h.digest('hex'), bytes };
}

describe('job output', () => {
  it('100 concurrent readers of one live job all receive identical, complete bytes', async () => {
    const n = 400_000;
    let want = '';
    for (let i = 1; i <= n; i++) want += `${i}\n`;
    const wantHash = createHash('sha256').update(want).digest('hex');
    const cmd = await ex.start('seq', ['1', String(n)], { owner });
    const readers: Promise<{ stdout: string; bytes: number }>[] = [];
    for (let i = 0; i < 100; i++) {
      readers.push(digest(cmd));
      // spread the readers over the job's run: some start before any output, some midway
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    const got = await Promise.all(readers);
    for (const g of got) assert.deepEqual(g, { stdout: wantHash, bytes: want.length });
    assert.equal((await cmd.wait()).outputBytes, want.length);
  });

  it('a reader that never reads does not slow a job printing 50 MB', async () => {
    const args = ['-c', '52428800', '/dev/zero'];
    const t0 = performance.now();
    await (await ex.start('head', args, { owner })).wait();
    const alone = performance.now() - t0;

    const t1 = performance.now();
    const cmd = await ex.start('head', args, { owner });
    const stalled = cmd.output()[Symbol.asyncIterator]();
    const first = await stalled.next(); // reads one chunk, then nothing until the job ended
    const info = await cmd.wait();
    const withStalled = performance.now() - t1;
    assert.equal(info.outputBytes, 52428800);
    assert.ok(
      // generous for a busy 2-core machine: a writer that waited for readers would never finish
      withStalled < alone * 3 + 1000,
      `alone ${alone.toFixed(0)} ms, with a stalled reader ${withStalled.toFixed(0)} ms`,
    );
    // the stalled reader still gets everything afterwards
    let bytes = first.done === true || first.value.kind !== 'data' ? 0 : first.value.data.length;
    for (let r = await stalled.next(); r.done !== true; r = await stalled.next()) {
      if (r.value.kind === 'data') bytes += r.value.data.length;
    }
    assert.equal(bytes, 52428800);
  });

  it('past the cap the job keeps running, the output says truncated and keeps nothing more', async () => {
    const { ex: capped } = await makeExecutor(env, { maxOutputBytes: 1000 });
    const cmd = await capped.start(
      'sh',
      ['-c', 'head -c 100000 /dev/zero | tr "\\0" a; echo; echo still-running >&2; exit 4'],
      { owner },
    );
    const info = await cmd.wait();
    assert.equal(info.status, 'exited');
    assert.equal(info.exitCode, 4, 'the job ran to its own end');
    assert.equal(info.outputBytes, 1000);
    assert.equal(info.outputTruncated, true);
    assert.deepEqual(await outputText(cmd), [`o:${'a'.repeat(1000)}`, 'T']);
    await capped.close();
  });

  it('a reader can stop early through its abort signal', async () => {
    const cmd = await ex.start('sh', ['-c', 'echo first; sleep 100'], { owner });
    const ac = new AbortController();
    const got: string[] = [];
    for await (const c of cmd.output({ signal: ac.signal })) {
      if (c.kind === 'data') got.push(c.data.toString());
      ac.abort();
    }
    assert.deepEqual(got, ['first\n']);
    await cmd.stop();
  });
});
