// SIGHUP reload of the real daemon (daemons/webterminal/main.ts) over TLS: a new target, a
// removed token (bearer and login cookie), a new CSP and a new server certificate apply while an
// attached session goes on; an invalid config and a change that takes a restart are refused with
// a log line, and the old config keeps running.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TLSSocket } from 'node:tls';
import { cgroup2Available } from '../../../shared/cgroup/index.ts';
import { createRunner } from '../../../shared/exec/index.ts';
import type { Spawned } from '../../../shared/exec/types.ts';
import { silentLogger } from '../../../shared/log/index.ts';
import { issueCertificate } from '../../../shared/pki/index.ts';
import { connectExec } from '../../../shared/stream/client.ts';
import { hashToken } from '../../../daemons/webterminal/auth.ts';
import { sandboxDeps, tempDir, testPki, TOKENS, type Pki } from './helpers.ts';

const MAIN = path.resolve('daemons/webterminal/main.ts');
// in namespaces-only mode the daemon would set up delegation wherever cgroup v2 is usable:
// never on the test runner's own cgroups
const cg = await cgroup2Available('/sys/fs/cgroup');
const skip = cg.ok ? 'the host has cgroup v2: the daemon would take over this cgroup' : false;

interface LogLine {
  msg: string;
  [k: string]: unknown;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
  serial: string;
}

describe('webterminal reload on SIGHUP', { skip, timeout: 180_000 }, () => {
  let dir: string;
  let pki: Pki;
  let proc: Spawned;
  let origin: string;
  const lines: LogLine[] = [];
  const waiters = new Set<() => void>();
  const file = (): string => path.join(dir, 'webterminal.toml');

  const config = (o: {
    tokens: (keyof typeof TOKENS)[];
    hosts: string[];
    targets: string[];
    extra?: string;
  }): string =>
    `${o.extra ?? ''}listen = "127.0.0.1:0"\nui_dir = "/nonexistent"\n` +
    `allowed_host_source_list = ${JSON.stringify(o.hosts)}\n` +
    `[tls]\ncert_file = ${JSON.stringify(path.join(dir, 'tls.crt'))}\n` +
    `key_file = ${JSON.stringify(path.join(dir, 'tls.key'))}\n` +
    `[auth]\n` +
    o.tokens
      .map((u) => `[[auth.tokens]]\nuser = "${u}"\nsha256 = "${hashToken(TOKENS[u])}"\n`)
      .join('') +
    `[cgroup]\nrequire = false\n` +
    o.targets.map((t) => `[[targets]]\nname = "${t}"\ntype = "sandbox"\n`).join('');

  const writeServerCert = async (): Promise<string> => {
    const c = await issueCertificate({
      ca: pki.caCredentials,
      commonName: 'localhost',
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
      days: 1,
    });
    await writeFile(path.join(dir, 'tls.crt'), c.certPem);
    await writeFile(path.join(dir, 'tls.key'), c.keyPem, { mode: 0o600 });
    return new X509Certificate(c.certPem).serialNumber;
  };

  /** the first log line from now on (or already seen, from index `from`) matching `pred` */
  const waitLog = (pred: (l: LogLine) => boolean, from: number, ms = 60_000): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = lines.slice(from).find(pred);
        if (hit !== undefined) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(
          new Error(`no such log line within ${ms} ms; last: ${JSON.stringify(lines.slice(-5))}`),
        );
      }, ms);
      waiters.add(check);
      check();
    });

  const api = (
    method: string,
    p: string,
    headers: Record<string, string>,
    body?: unknown,
  ): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const text = body === undefined ? undefined : JSON.stringify(body);
      const req = https.request(
        new URL(p, origin),
        {
          method,
          ca: pki.ca,
          agent: false,
          headers: {
            ...headers,
            ...(text === undefined ? {} : { 'content-type': 'application/json', origin }),
          },
        },
        (res) => {
          const serial =
            res.socket instanceof TLSSocket ? res.socket.getPeerCertificate().serialNumber : '';
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const s = Buffer.concat(chunks).toString('utf8');
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: s === '' ? {} : (JSON.parse(s) as Record<string, unknown>),
              serial,
            });
          });
        },
      );
      req.on('error', reject);
      req.end(text);
    });
  const bearer = (u: keyof typeof TOKENS): Record<string, string> => ({
    authorization: `Bearer ${TOKENS[u]}`,
  });
  const reload = async (toml: string): Promise<number> => {
    await writeFile(file(), toml);
    const from = lines.length;
    proc.kill('SIGHUP');
    return from;
  };

  before(async () => {
    await sandboxDeps(); // builds hostplane-nsinit in the checkout when needed
    dir = await tempDir('wt-reload');
    pki = await testPki();
    await writeServerCert();
    await writeFile(
      file(),
      config({ tokens: ['alice', 'bob'], hosts: ['a.example.com'], targets: ['shell'] }),
    );
    const runner = createRunner({ log: silentLogger(), allow: [process.execPath] });
    proc = runner.spawn([process.execPath, '--import', 'tsx', MAIN, '--config', file()], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let rest = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (s: string) => {
      rest += s;
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      for (const l of parts) {
        try {
          lines.push(JSON.parse(l) as LogLine);
        } catch {
          lines.push({ msg: l });
        }
      }
      for (const w of waiters) w();
    });
    proc.stderr!.resume();
    const ready = await waitLog((l) => l.msg === 'ready', 0);
    const m = /listening on (https:\/\/127\.0\.0\.1:\d+); sandboxes: namespaces only/.exec(
      String(ready['status']),
    );
    assert.ok(
      m !== null,
      `STATUS says where it listens and that limits are off: ${String(ready['status'])}`,
    );
    origin = m[1]!;
    assert.ok(
      lines.some((l) => l.msg.startsWith('cgroup v2 not usable')),
      'a warning says that sandboxes run without limits',
    );
  });

  after(async () => {
    proc.kill('SIGTERM');
    await proc.exited;
    await rm(dir, { recursive: true, force: true });
  });

  it('applies targets, tokens, CSP and TLS files while a session goes on, and keeps the old config when the new one is refused', async () => {
    // before: one target; bob logs in with his token; alice opens a shell
    const before = await api('GET', '/api/targets', bearer('alice'));
    assert.deepEqual(before.body['targets'], [{ name: 'shell', title: 'shell', type: 'sandbox' }]);
    assert.match(String(before.headers['content-security-policy']), /wss:\/\/a\.example\.com/);
    const login = await api('POST', '/api/login', bearer('bob'), {});
    assert.equal(login.status, 200);
    const bobCookie = String(login.headers['set-cookie']).split(';')[0]!;
    assert.equal((await api('GET', '/api/whoami', { cookie: bobCookie })).status, 200);

    const c = await api('POST', '/api/terminals', bearer('alice'), { target: 'shell' });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    const id = String(c.body['id']);
    const g = await api('GET', `/api/terminals/${id}`, bearer('alice'));
    assert.equal(g.status, 200, JSON.stringify(g.body));
    let out = '';
    const session = await connectExec((g.body['attach'] as { url: string }).url, {
      tls: { ca: pki.ca },
      headers: { ...bearer('alice'), origin },
      onOutput: (_ch, d) => {
        out += d.toString();
      },
    });
    const see = async (text: string): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!out.includes(text) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(out.includes(text), `no ${text} in ${JSON.stringify(out.slice(-300))}`);
    };
    session.write('echo one-$((6*7))\n');
    await see('one-42');

    // reload: a new target, bob's token gone, another CSP host, a new server certificate
    const serial = await writeServerCert();
    assert.notEqual(serial, before.serial);
    let from = await reload(
      config({ tokens: ['alice'], hosts: ['b.example.com'], targets: ['shell', 'extra'] }),
    );
    await waitLog((l) => l.msg === 'configuration reloaded', from);

    const after1 = await api('GET', '/api/targets', bearer('alice'));
    assert.deepEqual(
      (after1.body['targets'] as { name: string }[]).map((t) => t.name),
      ['shell', 'extra'],
    );
    const csp = String(after1.headers['content-security-policy']);
    assert.match(csp, /wss:\/\/b\.example\.com/);
    assert.doesNotMatch(csp, /a\.example\.com/);
    assert.equal(after1.serial, serial, 'new connections get the new certificate');
    assert.equal((await api('GET', '/api/whoami', bearer('bob'))).status, 401);
    assert.equal(
      (await api('GET', '/api/whoami', { cookie: bobCookie })).status,
      401,
      'a login made with a removed token ends with it',
    );
    session.write('echo two-$((6*7))\n');
    await see('two-42');

    // an invalid config: refused, with the reason in the log; the old one runs on
    from = await reload(
      `bogus_key = 1\n${config({ tokens: ['alice'], hosts: [], targets: ['shell'] })}`,
    );
    const bad = await waitLog((l) => l.msg.startsWith('reload failed'), from);
    assert.match(bad.msg, /keeping the old configuration: .*bogus_key/);
    // a change that takes a restart: refused as a whole
    from = await reload(
      config({ tokens: ['alice', 'bob'], hosts: [], targets: ['shell'] }).replace(
        'listen = "127.0.0.1:0"',
        'listen = "127.0.0.1:1"',
      ),
    );
    const fixed = await waitLog((l) => l.msg.startsWith('reload failed'), from);
    assert.match(fixed.msg, /listen changed, which takes a restart/);
    const still = await api('GET', '/api/targets', bearer('alice'));
    assert.deepEqual(
      (still.body['targets'] as { name: string }[]).map((t) => t.name),
      ['shell', 'extra'],
    );
    assert.equal((await api('GET', '/api/whoami', bearer('bob'))).status, 401);
    session.write('echo three-$((6*7))\n');
    await see('three-42');
    const list = await api('GET', '/api/terminals', bearer('alice'));
    assert.deepEqual(
      (list.body['terminals'] as { id: string }[]).map((t) => t.id),
      [id],
    );
    session.close();
  });
});
