// Daemon stop: close() must leave no sandbox behind, neither of a session still starting nor of
// one asked for while it runs. The target's shell ignores SIGHUP, so only a kill ends it.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startHarness, testConfig, TOKENS, type Harness } from './helpers.ts';

const MARKER = `hostplane-close-test-${process.pid}`;

/** PIDs of host processes whose command line mentions MARKER. */
async function marked(): Promise<number[]> {
  const pids: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if ((await readFile(`/proc/${e}/cmdline`, 'utf8')).includes(MARKER)) pids.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

const config = (): ReturnType<typeof testConfig> =>
  testConfig(
    `[[targets]]\nname = "stubborn"\ntype = "sandbox"\n` +
      `command = ["/bin/sh", "-c", "trap '' HUP; sleep 1000 # ${MARKER}"]\n`,
  );

describe('webterminal close', { timeout: 60_000 }, () => {
  after(async () => {
    // whatever a failed run left behind
    for (const pid of await marked()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  });

  it('kills the sandboxes of sessions still starting before close() resolves', async () => {
    // the sandbox runs, but its start resolves only 500 ms later: close() comes in between
    const h: Harness = await startHarness({
      config: config(),
      wrapStart: (start) => async (target, session, size) => {
        const con = await start(target, session, size);
        await sleep(500);
        return con;
      },
    });
    const origin = { origin: h.wt.origin };
    for (const token of [TOKENS.alice, TOKENS.bob, TOKENS.olga]) {
      const c = await h.api('POST', '/api/terminals', {
        token,
        body: { target: 'stubborn' },
        headers: origin,
      });
      assert.equal(c.status, 201, JSON.stringify(c.json));
    }
    await h.wt.close();
    assert.deepEqual(await marked(), [], 'sandbox processes outlived close()');
  });

  it('stops accepting before it ends the sessions: nothing started during close() outlives it', async () => {
    const h: Harness = await startHarness({ config: config() });
    const origin = { origin: h.wt.origin };
    // a ready session, whose end close() waits for; its connection stays open in the agent
    const c = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'stubborn' },
      headers: origin,
    });
    assert.equal(c.status, 201, JSON.stringify(c.json));
    assert.equal(
      (await h.api('GET', `/api/terminals/${c.json.id}`, { token: TOKENS.alice })).status,
      200,
    );
    const closing = h.wt.close();
    const during = await h
      .api('POST', '/api/terminals', {
        token: TOKENS.bob,
        body: { target: 'stubborn' },
        headers: origin,
      })
      .then(
        (r) => r.status,
        (err: unknown) => (err as NodeJS.ErrnoException).code,
      );
    await closing;
    assert.notEqual(during, 201, 'a session was created during close()');
    assert.equal(h.wt.sessions.size, 0);
    await sleep(1000);
    assert.deepEqual(await marked(), [], 'sandbox processes outlived close()');
  });
});
