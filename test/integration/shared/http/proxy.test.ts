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
