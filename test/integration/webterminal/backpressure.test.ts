// Backpressure of a machine target: an upstream that prints as fast as it can, a browser that
// stops reading. The webterminal must stop reading the upstream socket (so the upstream, which
// only sends while its own socket drains, stalls) instead of buffering the flood in its memory.
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer, type WebSocket } from 'ws';
import { Channel, encodeFrame, V5_PROTOCOL } from '../../../shared/stream/index.ts';
import {
  attachTerm,
  startHarness,
  tempDir,
  testConfig,
  testPki,
  TOKENS,
  type Harness,
  type Pki,
} from './helpers.ts';

const CHUNK = Buffer.alloc(64 * 1024, 'x');
/** what the upstream keeps queued on its own socket at most: it sends only while that drains */
const UPSTREAM_QUEUE = 256 * 1024;
/**
 * Bound on what the upstream can get rid of while the browser reads nothing: the daemon's
 * high-water mark (1 MiB) plus kernel socket buffers of two loopback connections and TLS
 * records (11 MiB measured). Unpaused, the daemon took everything: 2.8 GiB in 60 s.
 */
const BOUND = 32 << 20;

/** An exec endpoint that floods stdout while its socket drains and counts what it sent. */
async function floodingGateway(pki: Pki): Promise<{
  url: string;
  sent: () => number;
  close(): Promise<void>;
}> {
  let sent = 0;
  const server = https.createServer({ ...pki.server, minVersion: 'TLSv1.3' });
  const wss = new WebSocketServer({
    server,
    perMessageDeflate: false,
    handleProtocols: (offered) => (offered.has(V5_PROTOCOL) ? V5_PROTOCOL : false),
  });
  const frame = encodeFrame(Channel.stdout, CHUNK);
  wss.on('connection', (ws: WebSocket) => {
    const pump = (): void => {
      if (ws.readyState !== ws.OPEN) return;
      while (ws.bufferedAmount < UPSTREAM_QUEUE) {
        ws.send(frame);
        sent += CHUNK.length;
      }
      setTimeout(pump, 5);
    };
    pump();
    ws.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    sent: () => sent,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    },
  };
}

/** Waits until `value()` has not changed for `quietMs`; returns the settled value. */
async function settled(value: () => number, quietMs: number, maxMs: number): Promise<number> {
  const deadline = Date.now() + maxMs;
  let last = value();
  let since = Date.now();
  while (Date.now() < deadline) {
    await sleep(100);
    const v = value();
    if (v !== last) {
      last = v;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return v;
  }
  throw new Error(`still growing after ${maxMs} ms: ${last} bytes`);
}

describe('webterminal machine target backpressure', { timeout: 120_000 }, () => {
  let h: Harness;
  let gw: Awaited<ReturnType<typeof floodingGateway>>;
  let dir: string;

  before(async () => {
    const pki = await testPki();
    gw = await floodingGateway(pki);
    dir = await tempDir('wt-backpressure');
    const ca = path.join(dir, 'ca.crt');
    const caKey = path.join(dir, 'ca.key');
    await writeFile(ca, pki.caCredentials.certPem);
    await writeFile(caKey, pki.caCredentials.keyPem, { mode: 0o600 });
    h = await startHarness({
      pki,
      config: testConfig(
        `[[targets]]\nname = "flood"\ntype = "machine"\ngateway = "${gw.url}"\n` +
          `namespace = "default"\nmachine = "flood"\nca_file = ${JSON.stringify(ca)}\n` +
          `session_ca_cert_file = ${JSON.stringify(ca)}\n` +
          `session_ca_key_file = ${JSON.stringify(caKey)}\n`,
      ),
    });
  });
  after(async () => {
    await h.wt.close();
    await gw.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stops reading the upstream while the browser does not read, and goes on once it does', async () => {
    const origin = { origin: h.wt.origin };
    const c = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'flood' },
      headers: origin,
    });
    assert.equal(c.status, 201, JSON.stringify(c.json));
    const g = await h.api('GET', `/api/terminals/${c.json.id}`, { token: TOKENS.alice });
    assert.equal(g.status, 200, JSON.stringify(g.json));
    const term = await attachTerm(h, g.json.attach.url, {
      authorization: `Bearer ${TOKENS.alice}`,
      ...origin,
    });
    // the browser stops reading at once
    term.session.pause();
    assert.equal(term.session.paused, true);

    const stalled = await settled(gw.sent, 1500, 20_000);
    assert.ok(stalled < BOUND, `the upstream got ${stalled} bytes out past a paused browser`);
    // still stalled a while later: nothing in the daemon drains the upstream
    await sleep(1000);
    assert.equal(gw.sent(), stalled, 'the upstream kept sending while the browser read nothing');
    const received = term.out().length;

    // the browser reads again: the daemon resumes the upstream and output flows
    term.session.resume();
    const want = stalled + 2 * BOUND;
    const deadline = Date.now() + 60_000;
    while (gw.sent() < want && Date.now() < deadline) await sleep(100);
    assert.ok(gw.sent() >= want, `after resume the upstream sent only ${gw.sent()} bytes`);
    assert.ok(term.out().length > received + BOUND, 'the browser got the output after resuming');

    const del = await h.api('DELETE', `/api/terminals/${c.json.id}`, {
      token: TOKENS.alice,
      headers: origin,
    });
    assert.equal(del.status, 204);
  });
});
