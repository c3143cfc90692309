// Attachments of one session: a viewer that stops reading, and how many may attach at once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExecRefusedError } from '../../../shared/stream/client.ts';
import { attachTerm, startHarness, testConfig, TOKENS, type Harness } from './helpers.ts';

const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

describe('webterminal attachments', { timeout: 120_000 }, () => {
  let h: Harness;
  let origin: Record<string, string>;
  before(async () => {
    h = await startHarness({ config: testConfig('[sessions]\nmax_attachments = 2\n') });
    origin = { origin: h.wt.origin };
  });
  after(async () => {
    await h.wt.close();
  });

  async function shared(target: string): Promise<string> {
    const c = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target },
      headers: origin,
    });
    assert.equal(c.status, 201, JSON.stringify(c.json));
    const s = await h.api('POST', `/api/terminals/${c.json.id}/share`, {
      token: TOKENS.alice,
      body: { user: 'bob' },
      headers: origin,
    });
    assert.equal(s.status, 200);
    return c.json.id;
  }

  it('goes on for the creator while a read-only viewer reads nothing, and drops that viewer', async () => {
    const id = await shared('shell');
    const gv = await h.api('GET', `/api/terminals/${id}`, { token: TOKENS.bob });
    const viewer = await attachTerm(h, gv.json.attach.url, { ...bearer(TOKENS.bob), ...origin });
    viewer.session.pause();
    const ga = await h.api('GET', `/api/terminals/${id}`, { token: TOKENS.alice });
    const alice = await attachTerm(h, ga.json.attach.url, { ...bearer(TOKENS.alice), ...origin });
    // 10 MB: past what the viewer's socket buffers and the 4 MiB it may lag
    alice.session.write('head -c 10000000 /dev/zero | tr "\\0" x; echo; echo DONE-$((40+2))\r');
    await alice.waitFor('DONE-42', 60_000);
    assert.equal(h.wt.sessions.byId(id)?.attachments, 1, 'the lagging viewer is still attached');
    alice.session.close();
    viewer.session.close();
    await h.api('DELETE', `/api/terminals/${id}`, { token: TOKENS.alice, headers: origin });
  });

  it('answers 429 over max_attachments and keeps the token for when one detached', async () => {
    const id = await shared('shell-2');
    const headers = { ...bearer(TOKENS.alice), ...origin };
    const url = async (): Promise<string> =>
      (await h.api('GET', `/api/terminals/${id}`, { token: TOKENS.alice })).json.attach.url;
    const first = await attachTerm(h, await url(), headers);
    const gb = await h.api('GET', `/api/terminals/${id}`, { token: TOKENS.bob });
    const second = await attachTerm(h, gb.json.attach.url, { ...bearer(TOKENS.bob), ...origin });
    const third = await url();
    await assert.rejects(attachTerm(h, third, headers), (e: unknown) => {
      assert.ok(e instanceof ExecRefusedError);
      assert.equal(e.status, 429);
      assert.match(e.message, /max_attachments/);
      return true;
    });
    first.session.close();
    while ((h.wt.sessions.byId(id)?.attachments ?? 0) > 1) await sleep(20);
    const again = await attachTerm(h, third, headers);
    again.session.close();
    second.session.close();
    await h.api('DELETE', `/api/terminals/${id}`, { token: TOKENS.alice, headers: origin });
  });
});
