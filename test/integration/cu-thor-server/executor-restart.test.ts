// Metadata and output survive a daemon crash; the job it left running becomes `lost` and dies.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { decodeRecord } from '../../../daemons/cu-thor-server/store.ts';
import {
  eventually,
  findMarked,
  makeExecutor,
  outputText,
  setupEnv,
  type Env,
} from './executor-helpers.ts';

let env: Env;
let stateDir: string;
const fixture = fileURLToPath(new URL('./fixtures/crash-daemon.ts', import.meta.url));
const repo = fileURLToPath(new URL('../../../', import.meta.url));

before(async () => {
  env = await setupEnv();
  stateDir = await mkdtemp(join(tmpdir(), 'cu-thor-restart-'));
});
after(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

describe('restart', () => {
  it('keeps finished jobs readable and marks the job left running lost, killing it', async () => {
    const marker = `${200000 + randomInt(1e6)}`;
    const cgroupRoot = await mkdtemp(join(tmpdir(), 'cu-thor-nocgroup-'));
    const daemon = env.runner.spawn(
      [env.node, '--import', 'tsx', fixture, stateDir, env.nsinit, env.unshare, cgroupRoot, marker],
      { cwd: repo },
    );
    let ids: { finished: string; running: string } | undefined;
    try {
      for await (const line of createInterface({ input: daemon.stdout! })) {
        ids = JSON.parse(line) as { finished: string; running: string };
        break;
      }
      assert.ok(ids !== undefined, 'the fixture printed the job ids');
      const { running } = ids;
      // the running job's metadata is written right after it started
      await eventually(async () => {
        try {
          const rec = decodeRecord(
            await readFile(join(stateDir, 'jobs', running, 'meta.json'), 'utf8'),
          );
          return rec.host?.startTime != null;
        } catch {
          return false;
        }
      });
      assert.equal((await findMarked(marker)).all.length, 1, 'the long job runs');
      daemon.kill('SIGKILL');
      await daemon.exited;
      assert.equal((await findMarked(marker)).all.length, 1, 'the job outlives the crashed daemon');
    } finally {
      daemon.kill('SIGKILL');
    }

    const { running, finished } = ids;
    const { ex } = await makeExecutor(env, { stateDir });
    const lost = ex.get(running)?.info();
    assert.equal(lost?.status, 'lost');
    assert.match(lost.reason ?? '', /restarted/);
    await eventually(async () => (await findMarked(marker)).all.length === 0, 3_000);
    const done = ex.get(finished);
    assert.equal(done?.info().status, 'exited');
    assert.deepEqual(await outputText(done), ['o:before the crash\n']);
    assert.deepEqual(
      ex.list('client1').map((i) => i.id),
      [finished, running],
    );
    await ex.close();

    // the lost state is on disk too: a second restart sees it as is
    const { ex: again } = await makeExecutor(env, { stateDir });
    assert.equal(again.get(running)?.info().status, 'lost');
    await again.close();
  });
});
