// Input backpressure: a terminal whose program reads nothing makes the daemon stop reading the
// browser's socket instead of buffering everything it is sent.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { attachTerm, startHarness, testConfig, TOKENS, type Harness } from './helpers.ts';

describe('webterminal input', { timeout: 120_000 }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      config: testConfig(
        '[[targets]]\nname = "deaf"\ntype = "sandbox"\ncommand = ["/bin/sh", "-c", "echo READY; exec sleep 600"]\n',
      ),
    });
  });
  after(async () => {
    await h.wt.close();
  });

  it('stops reading a browser whose terminal takes no input, holding a bounded buffer', async () => {
    const headers = { authorization: `Bearer ${TOKENS.alice}`, origin: h.wt.origin };
    const c = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'deaf' },
      headers: { origin: h.wt.origin },
    });
    assert.equal(c.status, 201, JSON.stringify(c.json));
    const g = await h.api('GET', `/api/terminals/${c.json.id}`, { token: TOKENS.alice });
    assert.equal(g.status, 200, JSON.stringify(g.json));
    const term = await attachTerm(h, g.json.attach.url, headers);
    await term.waitFor('READY');
    const chunk = Buffer.alloc(256 << 10, 0x61);
    const limit = 128 << 20;
    let sent = 0;
    let lastBuffered = 0;
    let lastProgress = Date.now();
    let stalledAt = -1;
    while (sent < limit && stalledAt < 0) {
      term.session.write(chunk);
      sent += chunk.length;
      while (term.session.bufferedAmount() > 4 << 20) {
        await sleep(10);
        const buffered = term.session.bufferedAmount();
        if (buffered < lastBuffered) lastProgress = Date.now();
        lastBuffered = buffered;
        if (Date.now() - lastProgress > 1_000) {
          stalledAt = sent - buffered; // what the client got rid of
          break;
        }
      }
    }
    // what the daemon took is bounded: had it read on, the client would have got rid of all of
    // it (128 MiB); 17-22 MiB here, the kernel's and TLS's buffers on both sides. The memory of
    // the daemon alone cannot be told apart from the client's TLS backlog in a process that is
    // both (test/integration/machine-exec/broker.test.ts measures it for the broker).
    assert.ok(
      stalledAt >= 0 && stalledAt < 48 << 20,
      `the browser got rid of ${stalledAt < 0 ? sent : stalledAt} bytes while the terminal read nothing`,
    );
    await h.api('DELETE', `/api/terminals/${c.json.id}`, {
      token: TOKENS.alice,
      headers: { origin: h.wt.origin },
    });
    await term.status; // the deleted session ends the attachment
  });
});
