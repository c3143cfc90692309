// The pod webhook over real TLS on 127.0.0.1:0: patches applied and checked, every bad input,
// certificate rotation without restart, client-CA enforcement, header timeout.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { request, type RequestOptions } from 'node:https';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { connect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import jsonpatch from 'fast-json-patch';
import { createMemoryLogger, silentLogger } from '../../../shared/log/index.ts';
import { runWebhook } from '../../../daemons/apiserver-proxy-pod-webhook/run.ts';
import {
  webhookSchema,
  type WebhookConfig,
} from '../../../daemons/apiserver-proxy-pod-webhook/config.ts';
import { startWebhook, WEBHOOK_PATH } from '../../../daemons/apiserver-proxy-pod-webhook/server.ts';
import type { WebhookServer } from '../../../daemons/apiserver-proxy-pod-webhook/server.ts';
import type { ServerLimits } from '../../../shared/http/server.ts';
import { createCA, issueCertificate } from '../../../shared/pki/index.ts';

const FQDN = 'api.example.com.';

interface Issued {
  cert: string;
  key: string;
}

/** A CA, a server certificate for localhost/127.0.0.1, and client certificates by CN. */
async function makePki(
  clients: string[],
): Promise<{ ca: string; server: Issued; clients: Record<string, Issued> }> {
  const ca = await createCA({ commonName: `webhook test ca ${Math.random()}`, bits: 2048 });
  const issue = async (cn: string, usage: 'server' | 'client'): Promise<Issued> => {
    const c = await issueCertificate({
      ca,
      commonName: cn,
      usage,
      ...(usage === 'server' ? { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] } : {}),
    });
    return { cert: c.certPem, key: c.keyPem };
  };
  const out: Record<string, Issued> = {};
  for (const cn of clients) out[cn] = await issue(cn, 'client');
  return { ca: ca.certPem, server: await issue('localhost', 'server'), clients: out };
}

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(
  port: number,
  ca: string | string[],
  opts: RequestOptions & { body?: string | Buffer } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        ca,
        servername: 'localhost',
        method: 'POST',
        path: WEBHOOK_PATH,
        agent: false,
        ...opts,
        headers: {
          'content-type': 'application/json',
          ...(opts.headers as Record<string, string>),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The certificate the server presents now (which one is the question, not whether it is trusted). */
function servedCert(port: number): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cert = s.getPeerCertificate();
      s.end();
      resolve(cert);
    });
    s.on('error', reject);
  });
}

function review(object: unknown, uid = 'e911857d-c318-11e8-bbad-025000000001'): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      object,
    },
  });
}

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'default' },
  spec: {
    initContainers: [{ name: 'init', image: 'busybox' }],
    containers: [
      { name: 'app', image: 'nginx', env: [{ name: 'A', value: '1' }] },
      { name: 'side', image: 'x', env: [{ name: 'KUBERNETES_SERVICE_HOST', value: 'keep.me' }] },
    ],
  },
};

async function certDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hp-webhook-'));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}

/** Starts runWebhook in-process; resolves once it listens. */
async function start(
  cfg: Partial<Record<keyof WebhookConfig, unknown>>,
  onCertificates?: () => void,
): Promise<{ web: WebhookServer; stop: () => Promise<void>; reload: () => Promise<void> }> {
  const config = webhookSchema.parse({ apiserver_fqdn: FQDN, host: '127.0.0.1', port: 0, ...cfg });
  const ac = new AbortController();
  let web: WebhookServer | undefined;
  let reload: (() => Promise<void>) | undefined;
  let stopped: Promise<void> = Promise.resolve();
  const listening = new Promise<void>((resolve, reject) => {
    const done = runWebhook({
      config,
      log: silentLogger(),
      signal: ac.signal,
      ready: () => {
        resolve();
      },
      onReload: (fn) => {
        reload = () => fn(config);
      },
      onListening: (w) => {
        web = w;
      },
      ...(onCertificates ? { onCertificates } : {}),
    });
    done.catch(reject);
    stopped = done;
  });
  await listening;
  return {
    web: web!,
    reload: reload!,
    stop: async () => {
      ac.abort();
      await stopped;
    },
  };
}

describe('apiserver-proxy-pod-webhook over TLS', () => {
  let pki: Awaited<ReturnType<typeof makePki>>;
  let dir: string;
  let srv: Awaited<ReturnType<typeof start>>;

  before(async () => {
    pki = await makePki(['apiserver']);
    dir = await certDir({ 'tls.crt': pki.server.cert, 'tls.key': pki.server.key });
    srv = await start({ cert_dir: dir });
  });
  after(async () => {
    await srv.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers a Pod review with the same uid, apiVersion and kind, and a patch that applies cleanly', async () => {
    const res = await call(srv.web.port, pki.ca, { body: review(POD) });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const out = JSON.parse(res.body) as {
      apiVersion: string;
      kind: string;
      response: { uid: string; allowed: boolean; patchType?: string; patch?: string };
    };
    assert.equal(out.apiVersion, 'admission.k8s.io/v1');
    assert.equal(out.kind, 'AdmissionReview');
    assert.equal(out.response.uid, 'e911857d-c318-11e8-bbad-025000000001');
    assert.equal(out.response.allowed, true);
    assert.equal(out.response.patchType, 'JSONPatch');
    const ops = JSON.parse(
      Buffer.from(out.response.patch!, 'base64').toString(),
    ) as jsonpatch.Operation[];
    const patched = jsonpatch.applyPatch(structuredClone(POD), ops, true, false).newDocument;
    const host = { name: 'KUBERNETES_SERVICE_HOST', value: FQDN };
    assert.deepEqual(patched.spec, {
      initContainers: [{ name: 'init', image: 'busybox', env: [host] }],
      containers: [
        { name: 'app', image: 'nginx', env: [{ name: 'A', value: '1' }, host] },
        { name: 'side', image: 'x', env: [{ name: 'KUBERNETES_SERVICE_HOST', value: 'keep.me' }] },
      ],
    });
  });

  it('sends no patch for a pod that already has the variable everywhere', async () => {
    const pod = { ...POD, spec: { containers: [POD.spec.containers[1]] } };
    const res = await call(srv.web.port, pki.ca, { body: review(pod) });
    assert.equal(res.status, 200);
    const out = JSON.parse(res.body) as { response: Record<string, unknown> };
    assert.deepEqual(Object.keys(out.response).sort(), ['allowed', 'uid']);
  });

  it('answers /healthz and /readyz', async () => {
    for (const p of ['/healthz', '/readyz']) {
      const res = await call(srv.web.port, pki.ca, { method: 'GET', path: p });
      assert.equal(res.status, 200, p);
    }
  });

  const bad: {
    name: string;
    opts: RequestOptions & { body?: string | Buffer };
    status: number;
    re: RegExp;
  }[] = [
    { name: 'non-JSON', opts: { body: 'hello' }, status: 400, re: /parsing AdmissionReview/ },
    {
      name: 'truncated JSON',
      opts: { body: review(POD).slice(0, 80) },
      status: 400,
      re: /parsing/,
    },
    {
      name: 'a review without request',
      opts: {
        body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }),
      },
      status: 400,
      re: /no request/,
    },
    { name: 'a review without uid', opts: { body: review(POD, '') }, status: 400, re: /no uid/ },
    {
      name: 'a deeply nested kind',
      opts: { body: `{"kind":${'['.repeat(20_000)}${']'.repeat(20_000)}}` },
      status: 400,
      re: /kind is an array, expected "AdmissionReview"/,
    },
    {
      name: 'a deeply nested apiVersion',
      opts: {
        body: `{"kind":"AdmissionReview","apiVersion":${'['.repeat(20_000)}${']'.repeat(20_000)}}`,
      },
      status: 400,
      re: /apiVersion is an array, expected one of/,
    },
    {
      name: 'a 3 MiB kind string',
      opts: { body: JSON.stringify({ kind: 'x'.repeat(3 << 20) }) },
      status: 400,
      re: /kind is "x{64}"\.\.\. \(a string of 3145728 characters\)/,
    },
    {
      name: 'a wrong content type',
      opts: { body: review(POD), headers: { 'content-type': 'text/plain' } },
      status: 415,
      re: /content-type "text\/plain"/,
    },
    {
      name: 'a declared body over the bound',
      opts: { body: Buffer.alloc(5 * 1024 * 1024, 0x20) },
      status: 413,
      re: /exceed|more than/,
    },
    {
      name: 'a chunked body over the bound',
      opts: {
        body: Buffer.alloc(5 * 1024 * 1024, 0x20),
        headers: { 'transfer-encoding': 'chunked' },
      },
      status: 413,
      re: /exceed|more than/,
    },
    { name: 'GET on the webhook', opts: { method: 'GET' }, status: 405, re: /use POST/ },
    { name: 'an unknown path', opts: { path: '/mutate' }, status: 404, re: /no route/ },
  ];
  for (const b of bad) {
    it(`answers ${b.name} with ${b.status} and a JSON error, and keeps serving`, async () => {
      const res = await call(srv.web.port, pki.ca, b.opts);
      assert.equal(res.status, b.status);
      // an error names what is wrong; it never echoes the request back
      assert.ok(res.body.length < 1024, `error body of ${res.body.length} bytes`);
      const err = JSON.parse(res.body) as { code: number; message: string };
      assert.equal(err.code, b.status);
      assert.match(err.message, b.re);
      if (b.status === 405) assert.equal(res.headers['allow'], 'POST');
      const ok = await call(srv.web.port, pki.ca, { body: review(POD) });
      assert.equal(ok.status, 200);
    });
  }

  it('closes a connection whose headers do not arrive in time', async () => {
    const web = await startWebhook({
      fqdn: FQDN,
      log: silentLogger(),
      tls: { cert: Buffer.from(pki.server.cert), key: Buffer.from(pki.server.key) },
      host: '127.0.0.1',
      port: 0,
      limits: { headersTimeoutMs: 300 },
    });
    try {
      const started = Date.now();
      const text = await new Promise<string>((resolve, reject) => {
        const s = connect(
          { host: '127.0.0.1', port: web.port, ca: pki.ca, servername: 'localhost' },
          () => {
            s.write('POST /webhook/pod-apiserver-env HTTP/1.1\r\nHost: x\r\n');
          },
        );
        let got = '';
        s.on('data', (b: Buffer) => (got += b.toString()));
        s.on('close', () => {
          resolve(got);
        });
        s.on('error', reject);
      });
      assert.match(text, /^HTTP\/1\.1 408/);
      assert.ok(Date.now() - started < 5000);
    } finally {
      await web.close();
    }
  });

  /** A webhook with `limits`, for the tests of connection bounds. */
  function limited(limits: ServerLimits): Promise<WebhookServer> {
    return startWebhook({
      fqdn: FQDN,
      log: silentLogger(),
      tls: { cert: Buffer.from(pki.server.cert), key: Buffer.from(pki.server.key) },
      host: '127.0.0.1',
      port: 0,
      limits,
    });
  }

  /** Resolves with ms until the server closed `s`; rejects after `withinMs` if it stays open. */
  function closedWithin(s: Socket, withinMs: number): Promise<number> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`still open after ${withinMs} ms`));
      }, withinMs);
      s.on('error', () => undefined);
      s.on('close', () => {
        clearTimeout(t);
        resolve(Date.now() - started);
      });
    });
  }

  it('closes a connection that completes the TLS handshake and sends nothing', async () => {
    const web = await limited({ headersTimeoutMs: 300, firstRequestTimeoutMs: 600 });
    try {
      const s = connect({ host: '127.0.0.1', port: web.port, ca: pki.ca, servername: 'localhost' });
      let got = '';
      s.on('data', (b: Buffer) => (got += b.toString()));
      await once(s, 'secureConnect');
      const ms = await closedWithin(s, 5000);
      assert.ok(ms >= 400, `closed after ${ms} ms`);
      assert.equal(got, '');
    } finally {
      await web.close();
    }
  });

  it('closes a connection that never starts the TLS handshake', async () => {
    const web = await limited({ handshakeTimeoutMs: 300 });
    try {
      const s = netConnect(web.port, '127.0.0.1');
      await once(s, 'connect');
      await closedWithin(s, 5000);
    } finally {
      await web.close();
    }
  });

  it('still answers a request that started but stalls with 408, before closing idle connections', async () => {
    // the first-request bound defaults to headersTimeout + 5 s: the 408 comes first
    const web = await limited({ headersTimeoutMs: 300 });
    try {
      const s = connect({ host: '127.0.0.1', port: web.port, ca: pki.ca, servername: 'localhost' });
      let got = '';
      s.on('data', (b: Buffer) => (got += b.toString()));
      await once(s, 'secureConnect');
      s.write('POST /webh');
      await closedWithin(s, 5000);
      assert.match(got, /^HTTP\/1\.1 408/);
    } finally {
      await web.close();
    }
  });

  it('closes connections past maxConnections as they come, and serves again once one closes', async () => {
    const web = await limited({ maxConnections: 2 });
    const open: TLSSocket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const s = connect({
          host: '127.0.0.1',
          port: web.port,
          ca: pki.ca,
          servername: 'localhost',
        });
        await once(s, 'secureConnect');
        open.push(s);
      }
      const third = connect({
        host: '127.0.0.1',
        port: web.port,
        ca: pki.ca,
        servername: 'localhost',
      });
      let shook = false;
      third.on('secureConnect', () => (shook = true));
      await closedWithin(third, 5000);
      assert.equal(shook, false);

      const first = open.shift()!;
      first.destroy();
      await once(first, 'close');
      // the server notices the close a moment later
      await new Promise((r) => setTimeout(r, 100));
      const res = await call(web.port, pki.ca, { body: review(POD) });
      assert.equal(res.status, 200);
    } finally {
      for (const s of open) s.destroy();
      await web.close();
    }
  });

  it('refuses TLS 1.2', async () => {
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = connect(
          {
            host: '127.0.0.1',
            port: srv.web.port,
            ca: pki.ca,
            servername: 'localhost',
            maxVersion: 'TLSv1.2',
          },
          () => {
            s.end();
            resolve(undefined);
          },
        );
        s.on('error', reject);
      }),
    );
  });
});

describe('apiserver-proxy-pod-webhook certificate rotation', () => {
  it('serves a new certificate after its files change, and after SIGHUP, without a restart', async () => {
    const [first, second, third] = await Promise.all([makePki([]), makePki([]), makePki([])]);
    const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256;
    const dir = await certDir({ 'tls.crt': first.server.cert, 'tls.key': first.server.key });
    let changed: (() => void) | undefined;
    const srv = await start({ cert_dir: dir }, () => changed?.());
    try {
      assert.equal((await servedCert(srv.web.port)).fingerprint256, fingerprint(first.server.cert));

      // a rotation as a secret volume does it: new files moved into place
      const taken = new Promise<void>((resolve) => (changed = resolve));
      await writeFile(path.join(dir, 'tls.key.new'), second.server.key);
      await writeFile(path.join(dir, 'tls.crt.new'), second.server.cert);
      await rename(path.join(dir, 'tls.key.new'), path.join(dir, 'tls.key'));
      await rename(path.join(dir, 'tls.crt.new'), path.join(dir, 'tls.crt'));
      await taken;
      changed = undefined;
      assert.equal(
        (await servedCert(srv.web.port)).fingerprint256,
        fingerprint(second.server.cert),
      );

      // a certificate without its key is refused: the previous pair stays
      await writeFile(path.join(dir, 'tls.crt'), third.server.cert);
      await srv.reload();
      assert.equal(
        (await servedCert(srv.web.port)).fingerprint256,
        fingerprint(second.server.cert),
      );

      // SIGHUP (shared/daemon calls the reload hook) once the key is there too
      await writeFile(path.join(dir, 'tls.key'), third.server.key);
      await srv.reload();
      assert.equal((await servedCert(srv.web.port)).fingerprint256, fingerprint(third.server.cert));
    } finally {
      await srv.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('apiserver-proxy-pod-webhook with a client CA', () => {
  let pki: Awaited<ReturnType<typeof makePki>>;
  let other: Awaited<ReturnType<typeof makePki>>;
  let dir: string;
  let srv: Awaited<ReturnType<typeof start>>;
  before(async () => {
    pki = await makePki(['apiserver']);
    other = await makePki(['stranger']);
    dir = await certDir({
      'tls.crt': pki.server.cert,
      'tls.key': pki.server.key,
      'ca.crt': pki.ca,
    });
    srv = await start({ cert_dir: dir, client_ca_name: 'ca.crt' });
  });
  after(async () => {
    await srv.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves a client whose certificate the CA signed', async () => {
    const c = pki.clients['apiserver']!;
    const res = await call(srv.web.port, pki.ca, { body: review(POD), cert: c.cert, key: c.key });
    assert.equal(res.status, 200);
  });

  it('refuses a client without a certificate', async () => {
    await assert.rejects(call(srv.web.port, pki.ca, { body: review(POD) }));
  });

  it('refuses a client whose certificate another CA signed', async () => {
    const c = other.clients['stranger']!;
    await assert.rejects(
      call(srv.web.port, pki.ca, { body: review(POD), cert: c.cert, key: c.key }),
    );
  });

  it('logs where it listens', async () => {
    const { log, records } = createMemoryLogger();
    const ac = new AbortController();
    const config = webhookSchema.parse({
      apiserver_fqdn: FQDN,
      host: '127.0.0.1',
      port: 0,
      cert_dir: dir,
    });
    let port = 0;
    const done = runWebhook({
      config,
      log,
      signal: ac.signal,
      ready: () => {
        ac.abort();
      },
      onReload: () => undefined,
      onListening: (w) => {
        port = w.port;
      },
    });
    await done;
    assert.ok(records.some((r) => r['msg'] === 'listening' && r['listen'] === `127.0.0.1:${port}`));
  });
});
