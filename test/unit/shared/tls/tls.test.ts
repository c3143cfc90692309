// Real TLS servers on 127.0.0.1:0 with certificates from shared/pki.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createCA, issueCertificate, type Credentials } from '../../../../shared/pki/index.ts';
import {
  clientContextOptions,
  peerIdentity,
  resolutionDirs,
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

  /** A watched source over `files`, and a function resolving at the next onChange. */
  async function watched(
    files: { cert: string; key: string },
    opts: { watch?: boolean; pollMs?: number } = {},
  ): Promise<{ source: CertificateSource; next: () => Promise<string> }> {
    const waiting: ((cn: string) => void)[] = [];
    const src = await watchCertificates({
      files,
      log: createMemoryLogger().log,
      debounceMs: 20,
      ...opts,
      onChange: (m) => {
        const cn = new X509Certificate(m.cert).subject.replace(/^CN=/, '');
        for (const f of waiting.splice(0)) f(cn);
      },
    });
    return { source: src, next: () => new Promise((resolve) => waiting.push(resolve)) };
  }

  async function serverPair(cn: string): Promise<Credentials> {
    return issueCertificate({
      ca: pki.ca,
      commonName: cn,
      dnsNames: ['localhost'],
      usage: 'server',
    });
  }

  /** Replaces the symlink `link` by one to `target` in one rename, as certbot and kubelet do. */
  async function swapLink(target: string, link: string): Promise<void> {
    await symlink(target, `${link}.tmp`);
    await rename(`${link}.tmp`, link);
  }

  it('follows certificates behind symlinks into other directories (certbot live/ and archive/)', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'hostplane-tls-certbot-'));
    let src: CertificateSource | undefined;
    try {
      for (const d of ['archive/1', 'archive/2', 'live', 'certs']) {
        await mkdir(path.join(root, d), { recursive: true });
      }
      const put = async (dir: string, c: Credentials): Promise<void> => {
        await writeFile(path.join(root, dir, 'cert.pem'), c.certPem);
        await writeFile(path.join(root, dir, 'key.pem'), c.keyPem);
      };
      await put('archive/1', await serverPair('first'));
      for (const f of ['cert.pem', 'key.pem']) {
        await symlink(`../archive/1/${f}`, path.join(root, 'live', f));
      }
      await symlink(path.join(root, 'live/cert.pem'), path.join(root, 'certs/tls.crt'));
      await symlink('../live/key.pem', path.join(root, 'certs/tls.key'));
      const files = {
        cert: path.join(root, 'certs/tls.crt'),
        key: path.join(root, 'certs/tls.key'),
      };
      assert.deepEqual((await resolutionDirs(files.cert)).sort(), [
        path.join(root, 'archive/1'),
        path.join(root, 'certs'),
        path.join(root, 'live'),
      ]);
      const w = await watched(files, { pollMs: 0 });
      src = w.source;

      // renewal: the live/ symlinks are swapped to a new archive directory
      await put('archive/2', await serverPair('second'));
      let changed = w.next();
      await swapLink('../archive/2/key.pem', path.join(root, 'live/key.pem'));
      await swapLink('../archive/2/cert.pem', path.join(root, 'live/cert.pem'));
      assert.equal(await changed, 'second');

      // the new target directory is watched too: files rewritten in place there are taken
      changed = w.next();
      await put('archive/2', await serverPair('third'));
      assert.equal(await changed, 'third');
    } finally {
      src?.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it("takes a secret volume's ..data swap", async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'hostplane-tls-secret-'));
    let src: CertificateSource | undefined;
    try {
      const version = async (name: string, c: Credentials): Promise<void> => {
        await mkdir(path.join(root, name));
        await writeFile(path.join(root, name, 'tls.crt'), c.certPem);
        await writeFile(path.join(root, name, 'tls.key'), c.keyPem);
      };
      await version('..v1', await serverPair('first'));
      await symlink('..v1', path.join(root, '..data'));
      await symlink('..data/tls.crt', path.join(root, 'tls.crt'));
      await symlink('..data/tls.key', path.join(root, 'tls.key'));
      const w = await watched(
        { cert: path.join(root, 'tls.crt'), key: path.join(root, 'tls.key') },
        { pollMs: 0 },
      );
      src = w.source;
      await version('..v2', await serverPair('second'));
      const changed = w.next();
      await swapLink('..v2', path.join(root, '..data'));
      await rm(path.join(root, '..v1'), { recursive: true });
      assert.equal(await changed, 'second');
    } finally {
      src?.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('re-reads the files every pollMs, for changes no watcher reports', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'hostplane-tls-poll-'));
    let src: CertificateSource | undefined;
    try {
      const files = { cert: path.join(root, 'tls.crt'), key: path.join(root, 'tls.key') };
      const put = async (c: Credentials): Promise<void> => {
        await writeFile(files.key, c.keyPem);
        await writeFile(files.cert, c.certPem);
      };
      await put(await serverPair('first'));
      // no watchers: only the poll can see the change
      const w = await watched(files, { watch: false, pollMs: 50 });
      src = w.source;
      const changed = w.next();
      await put(await serverPair('second'));
      assert.equal(await changed, 'second');
    } finally {
      src?.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
