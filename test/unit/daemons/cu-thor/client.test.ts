import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { clientSecureContext } from '../../../../daemons/cu-thor/client.ts';
import { serverContextOptions } from '../../../../shared/tls/index.ts';
import { makePki } from '../cu-thor-server/tls-fixture.ts';

const pki = await makePki(['client1']);
const creds = {
  ca: Buffer.from(pki.ca),
  cert: Buffer.from(pki.clients['client1']!.cert),
  key: Buffer.from(pki.clients['client1']!.key),
};

async function listen(options: tls.TlsOptions): Promise<tls.Server> {
  const server = tls.createServer(options, (s) => s.end());
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

function connect(server: tls.Server): Promise<tls.TLSSocket> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const s = tls.connect(
      {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        secureContext: clientSecureContext(creds),
      },
      () => {
        resolve(s);
      },
    );
    s.on('error', reject);
  });
}

describe('cu-thor client TLS', () => {
  let mtls: tls.Server;
  let old: tls.Server;
  before(async () => {
    mtls = await listen(
      serverContextOptions({ ca: pki.ca, cert: pki.server.cert, key: pki.server.key }),
    );
    old = await listen({ cert: pki.server.cert, key: pki.server.key, maxVersion: 'TLSv1.2' });
  });
  after(() => {
    mtls.close();
    old.close();
  });

  it('speaks TLS 1.3 and presents the client certificate, which the server verifies', async () => {
    const authorized = once(mtls, 'secureConnection') as Promise<[tls.TLSSocket]>;
    const s = await connect(mtls);
    try {
      assert.equal(s.getProtocol(), 'TLSv1.3');
      const [peer] = await authorized;
      assert.equal(peer.authorized, true);
      assert.equal(peer.getPeerCertificate().subject.CN, 'client1');
    } finally {
      s.destroy();
    }
  });

  it('refuses a server that offers only TLS 1.2', async () => {
    await assert.rejects(connect(old), /protocol|version/i);
  });
});
