// The spliced hop of shared/http/proxy: what it holds for a reader that stops reading is bounded,
// and the batched forwarding delivers every byte in order once the reader reads again, from a
// plain upstream (poollet → broker) and from a TLS one (gateway → poollet).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  PLAIN_BATCH,
  proxyUpgrade,
  SPLICE_HIGH_WATER,
  type ProxyOutcome,
  type Upstream,
} from '../../../../shared/http/proxy.ts';
import { silentLogger } from '../../../../shared/log/index.ts';
import { createTestCa } from '../../machine-exec/pki.ts';

const CHUNK = 64 * 1024;
const TOTAL = 96 * 1024 * 1024;
// byte i of the stream is i mod 251: a dropped, repeated or reordered chunk shows
const pattern = (offset: number, n: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (offset + i) % 251;
  return b;
};

const listen = async (server: net.Server): Promise<number> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

const settled = async (read: () => number, quietMs: number, maxMs: number): Promise<void> => {
  const deadline = Date.now() + maxMs;
  let last = -1;
  while (Date.now() < deadline) {
    const now = read();
    if (now === last) return;
    last = now;
    await new Promise((r) => setTimeout(r, quietMs));
  }
};

for (const scheme of ['http', 'https'] as const)
  describe(`exec proxy splice, ${scheme} upstream`, () => {
    let upstream: http.Server;
    let hop: http.Server;
    let hopPort: number;
    let sent = 0;
    let hopClient: Duplex | undefined;
    let ca = '';

    before(async () => {
      // an upstream that answers 101 and then writes TOTAL bytes as fast as it is let
      if (scheme === 'https') {
        const testCa = await createTestCa();
        const leaf = await testCa.issue('upstream', { server: ['127.0.0.1'] });
        ca = testCa.cert;
        upstream = https.createServer({ cert: leaf.cert, key: leaf.key });
      } else {
        upstream = http.createServer();
      }
      upstream.on('upgrade', (_req, socket: Duplex) => {
        socket.write(
          'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
        );
        const pump = (): void => {
          while (sent < TOTAL) {
            const n = Math.min(CHUNK, TOTAL - sent);
            const ok = socket.write(pattern(sent, n));
            sent += n;
            if (!ok) {
              socket.once('drain', pump);
              return;
            }
          }
          socket.end();
        };
        pump();
      });
      const upPort = await listen(upstream);
      hop = http.createServer();
      hop.on('upgrade', (req, socket: Duplex, head: Buffer) => {
        hopClient = socket;
        void proxyUpgrade(
          req,
          socket,
          head,
          { url: new URL(`${scheme}://127.0.0.1:${upPort}/exec/x`), tls: { ca } },
          silentLogger(),
        );
      });
      hopPort = await listen(hop);
    });
    after(async () => {
      hop.closeAllConnections();
      upstream.closeAllConnections();
      await Promise.all([new Promise((r) => hop.close(r)), new Promise((r) => upstream.close(r))]);
    });

    it('holds a bounded amount for a reader that stops, then delivers every byte in order', async (t) => {
      const client = net.connect(hopPort, '127.0.0.1');
      t.after(() => client.destroy());
      client.write(
        'GET /exec HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      );
      // read the 101 answer, then stop reading altogether
      const received: Buffer = await new Promise((resolve) => {
        let acc = Buffer.alloc(0);
        const onData = (c: Buffer): void => {
          acc = Buffer.concat([acc, c]);
          const end = acc.indexOf('\r\n\r\n');
          if (end >= 0) {
            client.off('data', onData);
            client.pause();
            resolve(acc.subarray(end + 4));
          }
        };
        client.on('data', onData);
      });
      assert.ok(hopClient !== undefined, 'the hop got the upgrade');

      await settled(() => sent, 300, 10_000);
      // what the upstream got rid of sits in kernel socket buffers (a few MiB each on loopback)
      // and in the hop, which stops reading once it holds SPLICE_HIGH_WATER (one read past it)
      assert.ok(sent < TOTAL / 2, `upstream wrote ${sent} of ${TOTAL} bytes to a stalled reader`);
      assert.ok(
        hopClient.writableLength <= SPLICE_HIGH_WATER + PLAIN_BATCH,
        `hop buffers ${hopClient.writableLength} bytes for the stalled reader`,
      );

      // reading again drains everything, intact
      let bytes = received.length;
      let bad = received.equals(pattern(0, received.length)) ? -1 : 0;
      const done = new Promise<void>((resolve) => client.once('end', resolve));
      client.on('data', (c: Buffer) => {
        if (bad < 0 && !c.equals(pattern(bytes, c.length))) bad = bytes;
        bytes += c.length;
      });
      client.resume();
      await done;
      assert.equal(bad, -1, `stream differs from what the upstream sent at byte ${bad}`);
      assert.equal(bytes, TOTAL);
    });

    it('answers 502 naming the upstream when nothing listens there', async (t) => {
      const closed = net.createServer();
      const port = await listen(closed);
      await new Promise((r) => closed.close(r));
      const server = http.createServer();
      const outcome = new Promise<ProxyOutcome>((resolve) => {
        server.on('upgrade', (req, socket: Duplex, head: Buffer) => {
          void proxyUpgrade(
            req,
            socket,
            head,
            { url: new URL(`${scheme}://127.0.0.1:${port}/exec/x`) },
            silentLogger(),
          ).then(resolve);
        });
      });
      const serverPort = await listen(server);
      t.after(() => new Promise((r) => server.close(r)));
      const answer = await new Promise<string>((resolve) => {
        const c = net.connect(serverPort, '127.0.0.1');
        let text = '';
        c.on('data', (d: Buffer) => (text += d.toString()));
        c.on('close', () => {
          resolve(text);
        });
        c.write(
          'GET /exec HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
        );
      });
      assert.match(answer, /^HTTP\/1\.1 502 /);
      assert.match(answer, new RegExp(`127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
      const o = await outcome;
      assert.equal(o.kind, 'failed');
    });
  });

describe('exec proxy, the end of an answer', () => {
  const UPGRADE =
    'GET /exec HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';

  interface Hop {
    port: number;
    // the hop's socket to the client, once the upgrade reached it
    client: () => Duplex | undefined;
    outcome: Promise<ProxyOutcome>;
    // resolves when the hop's connection to the upstream ends or closes
    upstreamLeft: Promise<void>;
  }

  // an upstream answering each upgrade with `answer`, and a hop proxying to it with `options`
  const hopTo = async (
    t: { after: (fn: () => Promise<unknown>) => void },
    answer: (socket: Duplex) => void,
    options: Partial<Upstream> = {},
  ): Promise<Hop> => {
    const upstream = http.createServer();
    let left: () => void = () => {};
    const upstreamLeft = new Promise<void>((resolve) => (left = resolve));
    // closeAllConnections() leaves upgraded sockets alone
    const sockets = new Set<net.Socket>();
    upstream.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.once('end', left);
      socket.once('close', left);
    });
    upstream.on('upgrade', (_req, socket: Duplex) => {
      socket.on('error', () => {});
      answer(socket);
    });
    const upPort = await listen(upstream);
    const hop = http.createServer();
    hop.on('connection', (socket: net.Socket) => sockets.add(socket));
    let hopClient: Duplex | undefined;
    const outcome = new Promise<ProxyOutcome>((resolve, reject) => {
      hop.on('upgrade', (req, socket: Duplex, head: Buffer) => {
        hopClient = socket;
        socket.on('error', () => {});
        proxyUpgrade(
          req,
          socket,
          head,
          { url: new URL(`http://127.0.0.1:${upPort}/exec/x`), ...options },
          silentLogger(),
        ).then(resolve, reject);
      });
    });
    const port = await listen(hop);
    t.after(async () => {
      for (const socket of sockets) socket.destroy();
      await Promise.all([new Promise((r) => hop.close(r)), new Promise((r) => upstream.close(r))]);
    });
    return { port, client: () => hopClient, outcome, upstreamLeft };
  };

  // what a client sees of its upgrade request: everything until the hop closes the connection
  const answerOf = async (port: number): Promise<string> =>
    new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      let text = '';
      c.on('data', (d: Buffer) => (text += d.toString()));
      c.on('close', () => {
        resolve(text);
      });
      c.write(UPGRADE);
    });

  // an upstream that answers 101, writes until the hop holds output its client has not taken,
  // then ends: the tail (in a session, the exit status) is still in the hop when the upstream goes
  const upgradedWithTail = async (
    t: { after: (fn: () => Promise<unknown>) => void },
    options: Partial<Upstream> = {},
  ): Promise<Hop & { sent: () => number }> => {
    let sent = 0;
    let hop: Hop | undefined = undefined;
    hop = await hopTo(
      t,
      (socket) => {
        socket.write(
          'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
        );
        const step = (): void => {
          if ((hop?.client()?.writableLength ?? 0) > 32 * 1024) {
            socket.end();
            return;
          }
          socket.write(pattern(sent, CHUNK));
          sent += CHUNK;
          setTimeout(step, 5);
        };
        step();
      },
      options,
    );
    return { ...hop, sent: () => sent };
  };

  // connects, reads the 101 and pauses; resolves with what came after the 101's headers
  const upgradeAndPause = async (port: number, t: { after: (fn: () => void) => void }) => {
    const client = net.connect(port, '127.0.0.1');
    t.after(() => client.destroy());
    client.write(UPGRADE);
    let acc = Buffer.alloc(0);
    await new Promise<void>((resolve) => {
      const onData = (c: Buffer): void => {
        acc = Buffer.concat([acc, c]);
        if (acc.includes('\r\n\r\n')) {
          client.off('data', onData);
          client.pause();
          resolve();
        }
      };
      client.on('data', onData);
    });
    return { client, first: Buffer.from(acc.subarray(acc.indexOf('\r\n\r\n') + 4)) };
  };

  it(
    'gives a reader that pauses past the close grace the whole tail once the upstream has ended',
    { timeout: 20_000 },
    async (t) => {
      const hop = await upgradedWithTail(t);
      const { client, first } = await upgradeAndPause(hop.port, t);
      // longer than the 5 s a hop gives a peer to close once it was sent everything
      await hop.upstreamLeft;
      await new Promise((r) => setTimeout(r, 6_500));
      const received: Buffer[] = [first];
      client.on('data', (c: Buffer) => received.push(c));
      client.resume();
      await new Promise((r) => client.once('close', r));
      const all = Buffer.concat(received);
      const sent = hop.sent();
      assert.equal(all.length, sent, `received ${all.length} of ${sent} bytes`);
      assert.ok(all.equals(pattern(0, sent)), 'the stream differs from what the upstream sent');
      assert.equal((await hop.outcome).kind, 'upgraded');
    },
  );

  it('cuts a reader that takes nothing for drainIdleMs once the upstream has ended', async (t) => {
    const hop = await upgradedWithTail(t, { drainIdleMs: 500 });
    await upgradeAndPause(hop.port, t);
    await hop.upstreamLeft;
    const t0 = Date.now();
    const outcome = await hop.outcome;
    assert.equal(outcome.kind, 'upgraded');
    assert.ok(
      Date.now() - t0 < 3_000,
      `the hop held a reader that reads nothing ${Date.now() - t0} ms`,
    );
    assert.ok(hop.client()?.destroyed, 'the hop closed its socket to the reader');
  });

  it(
    'answers 504 when the upstream stalls after the headers of a refusal, and lets go of it',
    { timeout: 5_000 },
    async (t) => {
      const hop = await hopTo(
        t,
        (socket) =>
          socket.write(
            'HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"x":',
          ),
        { timeoutMs: 500 },
      );
      const answer = await answerOf(hop.port);
      assert.match(answer, /^HTTP\/1\.1 504 /);
      assert.match(answer, /no complete answer within 500 ms/);
      const outcome = await hop.outcome;
      assert.equal(outcome.kind, 'failed');
      assert.equal(outcome.error.status, 504);
      await hop.upstreamLeft;
    },
  );

  it(
    'lets go of the upstream and reports the outcome when the client leaves during a refusal',
    { timeout: 5_000 },
    async (t) => {
      const hop = await hopTo(t, (socket) =>
        socket.write(
          'HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"x":',
        ),
      );
      const client = net.connect(hop.port, '127.0.0.1');
      client.on('data', () => {});
      client.write(UPGRADE);
      await new Promise((r) => setTimeout(r, 300));
      client.destroy();
      const outcome = await hop.outcome;
      assert.equal(outcome.kind, 'failed');
      assert.match(outcome.error.message, /client went away/);
      await hop.upstreamLeft;
    },
  );

  it(
    'relays a refusal and closes its connection to an upstream that would keep it open',
    { timeout: 5_000 },
    async (t) => {
      const hop = await hopTo(t, (socket) =>
        socket.write(
          'HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\ncontent-length: 2\r\n\r\n{}',
        ),
      );
      const answer = await answerOf(hop.port);
      assert.match(answer, /^HTTP\/1\.1 429 /);
      assert.match(answer, /retry-after: 3\r\n/);
      assert.ok(answer.endsWith('\r\n\r\n{}'));
      assert.deepEqual(await hop.outcome, { kind: 'refused', status: 429 });
      await hop.upstreamLeft;
    },
  );

  it(
    'answers 500 rather than rejecting when the request cannot be made (a header outside Latin-1)',
    { timeout: 5_000 },
    async (t) => {
      let dialed = false;
      const hop = await hopTo(t, () => (dialed = true), { headers: { 'x-remote-user': '李雷' } });
      const answer = await answerOf(hop.port);
      assert.match(answer, /^HTTP\/1\.1 500 /);
      assert.match(answer, /"kind":"Status"/);
      assert.match(answer, /x-remote-user/);
      const outcome = await hop.outcome;
      assert.equal(outcome.kind, 'failed');
      assert.equal(dialed, false);
    },
  );
});
