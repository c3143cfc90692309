// A request target Node's HTTP parser accepts but the WHATWG URL parser refuses (`//[`) is a
// 400 on every plain-request listener that routes by URL, not an exception that ends the daemon.
// The exec chain's three listeners are covered in test/integration/machine-exec/chain.test.ts.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import {
  createSidecarMetrics,
  serveMetrics,
} from '../../../../daemons/apiserver-proxy-sidecar/metrics.ts';
import { startHarness } from '../../webterminal/helpers.ts';

/** Sends one request with `target` and answers all the server wrote back. */
function raw(port: number, target: string, ca?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s =
      ca === undefined
        ? net.connect({ port, host: '127.0.0.1' })
        : tls.connect({ port, host: '127.0.0.1', ca, servername: 'localhost' });
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => {
      resolve(got);
    });
    s.end(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
  });
}

describe('an unparseable request target', () => {
  it('is a 400 at the sidecar metrics listener, which serves on', async () => {
    const m = await serveMetrics(
      createSidecarMetrics(),
      { host: '127.0.0.1', port: 0 },
      () => true,
    );
    try {
      const answer = await raw(m.port, '//[');
      assert.match(answer, /^HTTP\/1\.1 400 /, answer);
      assert.match(answer, /parsing the request target/);
      assert.match(await raw(m.port, '/healthz'), /^HTTP\/1\.1 200 /);
    } finally {
      await m.close();
    }
  });

  it('is a 400 at the webterminal, which serves on', async () => {
    const h = await startHarness();
    try {
      const port = Number(new URL(h.wt.origin).port);
      const answer = await raw(port, '//[', h.pki.ca);
      assert.match(answer, /^HTTP\/1\.1 400 /, answer);
      assert.match(answer, /parsing the request target/);
      assert.match(await raw(port, '/healthz', h.pki.ca), /^HTTP\/1\.1 200 /);
    } finally {
      await h.wt.close();
    }
  });
});
