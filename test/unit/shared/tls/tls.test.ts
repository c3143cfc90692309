// Real TLS servers on 127.0.0.1:0 with certificates from shared/pki.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createCA, issueCertificate, type Credentials } from '../../../../shared/pki/index.ts';
import {
  clientContextOptions,
  peerIdentity,
  serverContextOptions,
  watchCertificates,
  type CertificateSource,
} from '../../../../shared/tls/index.ts';
import { createMemoryLogger } from '../../../../shared/log/index.ts';

interface Pki {
  ca: Credentials;
  server: Credentials;
  client: Credentials;
  otherClient: Credentials;
}

async function makePki(): Promise<Pki> {
  // 2048-bit CAs keep the suite fast; the default 4096 is for real deployments
  const [ca, otherCa] = await Promise.all([
    createCA({ commonName: 'hostplane test CA', bits: 2048 }),
    createCA({ commonName: 'someone else', bits: 2048 }),
  ]);
  const [server, client, otherClient] = await Promise.all([
    issueCertificate({
      ca,
      commonName: 'server',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    }),
    issueCertificate({
      ca,
      commonName: 'alice',
      organizations: ['admins', 'dev'],
      usage: 'client',
    }),
    issueCertificate({ ca: otherCa, commonName: 'mallory', usage: 'client' }),
  ]);
  return { ca, server, client, otherClient };
}

/** A TLS server that answers each authenticated connection with its peer identity as JSON. */
async function identityServer(opts: tls.TlsOptions): Promise<{
  server: tls.Server;
  port: number;
  clientErrors: Error[];
  /** connections that completed the handshake and reached the handler */
  accepted: () => number;
}> {
  const clientErrors: Error[] = [];
  let accepted = 0;
  const server = tls.createServer(opts, (socket) => {
    accepted++;
    socket.end(JSON.stringify(peerIdentity(socket)));
  });
  server.on('tlsClientError', (err) => clientErrors.push(err));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as AddressInfo).port,
    clientErrors,
    accepted: () => accepted,
  };
}

/** Connects, reads everything; resolves with the data or rejects with the connection's error. */
function exchange(
  port: number,
  opts: tls.ConnectionOptions,
): Promise<{ data: string; peerCn: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...opts });
    let data = '';
    let peerCn: unknown;
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => {
      peerCn = socket.getPeerCertificate().subject.CN;
    });
    socket.on('data', (d: string) => (data += d));
    socket.on('error', reject);
    socket.on('end', () => {
      resolve({ data, peerCn });
    });
  });
}

describe('TLS options and peer identity', () => {
  let pki: Pki;
  let srv: Awaited<ReturnType<typeof identityServer>>;

  before(async () => {
    pki = await makePki();
    srv = await identityServer(
      serverContextOptions({
        ca: pki.ca.certPem,
        cert: pki.server.certPem,
        key: pki.server.keyPem,
      }),
    );
  });
  after(() => {
    srv.server.close();
  });

  it('reads CN and every O of a client certificate signed by the CA', async () => {
    const r = await exchange(
      srv.port,
      clientContextOptions({
        ca: pki.ca.certPem,
        cert: pki.client.certPem,
        key: pki.client.keyPem,
        servername: 'localhost',
      }),
    );
    assert.deepEqual(JSON.parse(r.data), { cn: 'alice', o: ['admins', 'dev'] });
  });

  it('refuses a client limited to TLS 1.2', async () => {
    const before = srv.clientErrors.length;
    await assert.rejects(
      exchange(srv.port, {
        ...clientContextOptions({
          ca: pki.ca.certPem,
          cert: pki.client.certPem,
          key: pki.client.keyPem,
          servername: 'localhost',
        }),
        minVersion: 'TLSv1.2',
        maxVersion: 'TLSv1.2',
      }),
      /protocol version|unsupported protocol/i,
    );
    assert.equal(srv.clientErrors.length, before + 1);
  });

  it('refuses a client certificate from another CA', async () => {
    const accepted = srv.accepted();
    const errored = once(srv.server, 'tlsClientError');
    const r = exchange(
      srv.port,
      clientContextOptions({
        ca: pki.ca.certPem,
        cert: pki.otherClient.certPem,
        key: pki.otherClient.keyPem,
        servername: 'localhost',
      }),
    );
    await errored;
    // in TLS 1.3 the client finishes its side of the handshake before the server checks its
    // certificate: the refusal shows as a closed connection or an alert, never as an answer
    await r.then(
      (ok) => {
        assert.equal(ok.data, '', 'no answer to a refused client');
      },
      (e: unknown) => {
        assert.match(String(e), /unknown ca|alert|ECONNRESET|certificate/i);
      },
    );
    assert.equal(srv.accepted(), accepted, 'the connection never reached the handler');
  });

  it('refuses a client without a certificate', async () => {
    const accepted = srv.accepted();
    const errored = once(srv.server, 'tlsClientError');
    const r = exchange(
      srv.port,
      clientContextOptions({ ca: pki.ca.certPem, servername: 'localhost' }),
    );
    const [err] = (await errored) as [Error];
    assert.match(err.message, /certificate/i);
    await r.then(
      (ok) => {
        assert.equal(ok.data, '');
      },
      (e: unknown) => {
        assert.match(String(e), /certificate required|alert|ECONNRESET/i);
      },
    );
    assert.equal(srv.accepted(), accepted);
  });

  it('has the client refuse a server its CA did not sign', async () => {
    const other = await createCA({ commonName: 'unrelated', bits: 2048 });
    await assert.rejects(
      exchange(
        srv.port,
        clientContextOptions({
          ca: other.certPem,
          cert: pki.client.certPem,
          key: pki.client.keyPem,
          servername: 'localhost',
        }),
      ),
      /self.signed|unable to (get|verify)|certificate/i,
    );
  });

  it('requires the CA whenever client certificates are requested, and cert and key together', () => {
    assert.throws(
      () =>
        serverContextOptions({
          cert: pki.server.certPem,
          key: pki.server.keyPem,
          requestCert: true,
        }),
      /requestCert needs the client CA/,
    );
    assert.equal(serverContextOptions({ cert: 'x', key: 'y' }).requestCert, false);
    assert.throws(() => clientContextOptions({ cert: pki.client.certPem }), /needs its key/);
  });
});

describe('watchCertificates', () => {
  let pki: Pki;
  let dir = '';
  let files: { ca: string; cert: string; key: string };
  let source: CertificateSource | undefined;
  let server: tls.Server | undefined;

  before(async () => {
    pki = await makePki();
    dir = await mkdtemp(path.join(tmpdir(), 'hostplane-tls-'));
    files = {
      ca: path.join(dir, 'ca.crt'),
      cert: path.join(dir, 'tls.crt'),
      key: path.join(dir, 'tls.key'),
    };
    await writeFile(files.ca, pki.ca.certPem);
    await writeFile(files.cert, pki.server.certPem);
    await writeFile(files.key, pki.server.keyPem);
  });
  after(async () => {
    source?.close();
    server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('swaps the server certificate when the files change, without a restart', async () => {
    const { log, records } = createMemoryLogger();
    let changes = 0;
    const changed: (() => void)[] = [];
    source = await watchCertificates({
      files,
      log,
      debounceMs: 50,
      onChange: (m) => {
        server?.setSecureContext(serverContextOptions({ ...m, ca: m.ca! }));
        changes++;
        for (const f of changed.splice(0)) f();
      },
    });
    const m = source.current();
    const srv = await identityServer(serverContextOptions({ ca: m.ca!, cert: m.cert, key: m.key }));
    server = srv.server;
    const client = clientContextOptions({
      ca: pki.ca.certPem,
      cert: pki.client.certPem,
      key: pki.client.keyPem,
      servername: 'localhost',
    });
    assert.equal((await exchange(srv.port, client)).peerCn, 'server');

    // a key that does not match the certificate is refused and the old pair stays
    const next = await issueCertificate({
      ca: pki.ca,
      commonName: 'server-2',
      dnsNames: ['localhost'],
      usage: 'server',
    });
    await writeFile(files.cert, next.certPem);
    assert.equal(await source.reload(), false);
    assert.ok(
      records.some(
        (r) => r['msg'] === 'certificate reload failed, keeping the previous certificate',
      ),
    );
    assert.equal((await exchange(srv.port, client)).peerCn, 'server');

    // the matching key arrives: the watcher picks the pair up by itself
    const swapped = new Promise<void>((resolve) => changed.push(resolve));
    await writeFile(files.key, next.keyPem);
    await swapped;
    assert.equal(changes, 1);
    assert.equal((await exchange(srv.port, client)).peerCn, 'server-2');
    assert.equal(await source.reload(), false, 'unchanged files are no change');
  });

  it('rejects at start when a file cannot be read', async () => {
    await assert.rejects(
      watchCertificates({
        files: { cert: path.join(dir, 'absent.crt'), key: files.key },
        log: createMemoryLogger().log,
        onChange: () => undefined,
      }),
      /reading certificate .*absent\.crt: ENOENT/,
    );
  });
});
