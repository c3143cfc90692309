import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { ExecRefusedError } from '../../../shared/stream/client.ts';
import {
  attachTerm,
  pidsOf,
  startHarness,
  testConfig,
  TOKENS,
  type Harness,
  type Term,
} from './helpers.ts';

const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

describe('webterminal API over TLS with sandbox targets', { timeout: 120_000 }, () => {
  let h: Harness;
  let origin: Record<string, string>;
  before(async () => {
    h = await startHarness({
      config: testConfig('[sessions]\nttl = "5m"\nmax_per_user = 2\n'),
    });
    origin = { origin: h.wt.origin };
  });
  after(async () => {
    await h.wt.close();
  });

  /** create + ready + attach as `token`; returns the session id and the attached terminal */
  async function open(target: string, token = TOKENS.alice): Promise<{ id: string; term: Term }> {
    const c = await h.api('POST', '/api/terminals', { token, body: { target }, headers: origin });
    assert.ok(c.status === 201 || c.status === 200, JSON.stringify(c.json));
    const g = await h.api('GET', `/api/terminals/${c.json.id}`, { token });
    assert.equal(g.status, 200, JSON.stringify(g.json));
    const term = await attachTerm(h, g.json.attach.url, { ...bearer(token), ...origin });
    return { id: c.json.id, term };
  }

  it('creates a session, reuses it for the same user and target, and runs the shell as nobody in it', async () => {
    const first = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'shell' },
      headers: origin,
    });
    assert.equal(first.status, 201);
    assert.equal(first.json.creator, 'alice');
    const again = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'shell' },
      headers: origin,
    });
    assert.equal(again.status, 200);
    assert.equal(again.json.id, first.json.id);
    assert.equal(again.json.reused, true);

    const g = await h.api('GET', `/api/terminals/${first.json.id}`, { token: TOKENS.alice });
    assert.equal(g.status, 200);
    assert.equal(g.json.state, 'ready');
    assert.equal(g.json.readOnly, false);
    assert.match(
      g.json.attach.url,
      /^wss:\/\/127\.0\.0\.1:\d+\/api\/terminals\/[0-9a-f-]{36}\/attach\?token=/,
    );
    const term = await attachTerm(h, g.json.attach.url, { ...bearer(TOKENS.alice), ...origin });
    term.session.write('echo hello-$((6*7)); echo uid=$(id -u)\r');
    await term.waitFor('hello-42');
    await term.waitFor(/uid=65534/);
    term.session.close();
    await h.api('DELETE', `/api/terminals/${first.json.id}`, {
      token: TOKENS.alice,
      headers: origin,
    });
  });

  it('accepts an attach token only once', async () => {
    const c = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'shell' },
      headers: origin,
    });
    const g = await h.api('GET', `/api/terminals/${c.json.id}`, { token: TOKENS.alice });
    const headers = { ...bearer(TOKENS.alice), ...origin };
    const term = await attachTerm(h, g.json.attach.url, headers);
    await assert.rejects(attachTerm(h, g.json.attach.url, headers), (e: unknown) => {
      assert.ok(e instanceof ExecRefusedError);
      assert.equal(e.status, 404);
      return true;
    });
    term.session.close();
    await h.api('DELETE', `/api/terminals/${c.json.id}`, { token: TOKENS.alice, headers: origin });
  });

  it('refuses the attach upgrade from a foreign Origin, and for another user', async () => {
    const c = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'shell' },
      headers: origin,
    });
    const g = await h.api('GET', `/api/terminals/${c.json.id}`, { token: TOKENS.alice });
    await assert.rejects(
      attachTerm(h, g.json.attach.url, { ...bearer(TOKENS.alice), origin: 'https://evil.example' }),
      (e: unknown) => e instanceof ExecRefusedError && e.status === 403,
    );
    await assert.rejects(
      attachTerm(h, g.json.attach.url, { ...bearer(TOKENS.bob), ...origin }),
      (e: unknown) => e instanceof ExecRefusedError && e.status === 403,
    );
    await h.api('DELETE', `/api/terminals/${c.json.id}`, { token: TOKENS.alice, headers: origin });
  });

  /** the status line of an upgrade request for `url` sent as raw bytes (a hand-made handshake) */
  function rawUpgrade(url: string, headers: Record<string, string>): Promise<string> {
    const u = new URL(url);
    const lines = [
      `GET ${u.pathname}${u.search} HTTP/1.1`,
      `Host: ${u.host}`,
      'Connection: Upgrade',
      'Upgrade: websocket',
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    return new Promise((resolve, reject) => {
      const s = tls.connect(
        { host: u.hostname, port: Number(u.port), ca: h.pki.ca, servername: 'localhost' },
        () => s.write(`${lines.join('\r\n')}\r\n\r\n`),
      );
      let out = '';
      s.on('data', (d: Buffer) => {
        out += d.toString('latin1');
        if (out.includes('\r\n')) {
          s.destroy();
          resolve(out.split('\r\n')[0]!);
        }
      });
      s.on('error', reject);
    });
  }

  it('keeps the attach token for its owner when a malformed handshake or another user presents it', async () => {
    const c = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'shell' },
      headers: origin,
    });
    const g = await h.api('GET', `/api/terminals/${c.json.id}`, { token: TOKENS.alice });
    const handshake = {
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Protocol': 'v5.channel.k8s.io',
      Origin: h.wt.origin,
    };
    const badVersion = await rawUpgrade(g.json.attach.url, {
      ...handshake,
      'Sec-WebSocket-Version': '99',
      Authorization: `Bearer ${TOKENS.alice}`,
    });
    assert.match(badVersion, / 400 /);
    const otherUser = await rawUpgrade(g.json.attach.url, {
      ...handshake,
      'Sec-WebSocket-Version': '13',
      Authorization: `Bearer ${TOKENS.bob}`,
    });
    assert.match(otherUser, / 403 /);
    const term = await attachTerm(h, g.json.attach.url, { ...bearer(TOKENS.alice), ...origin });
    term.session.close();
    await h.api('DELETE', `/api/terminals/${c.json.id}`, { token: TOKENS.alice, headers: origin });
  });

  it('lets only the creator view, heartbeat and delete (403 for others) until it shares read-only', async () => {
    const { id, term } = await open('shell');
    for (const [method, p] of [
      ['GET', `/api/terminals/${id}`],
      ['POST', `/api/terminals/${id}/heartbeat`],
      ['DELETE', `/api/terminals/${id}`],
      ['POST', `/api/terminals/${id}/share`],
    ] as const) {
      const body = p.endsWith('/share') ? { body: { user: 'bob' } } : {};
      const r = await h.api(method, p, { token: TOKENS.bob, headers: origin, ...body });
      assert.equal(r.status, 403, `${method} ${p}`);
    }
    const shared = await h.api('POST', `/api/terminals/${id}/share`, {
      token: TOKENS.alice,
      body: { user: 'bob' },
      headers: origin,
    });
    assert.equal(shared.status, 200);
    assert.deepEqual(shared.json.viewers, ['bob']);
    const gb = await h.api('GET', `/api/terminals/${id}`, { token: TOKENS.bob });
    assert.equal(gb.status, 200);
    assert.equal(gb.json.readOnly, true);
    const viewer = await attachTerm(h, gb.json.attach.url, { ...bearer(TOKENS.bob), ...origin });
    viewer.session.write('echo from-bob-$((1+1))\r');
    term.session.write('echo from-alice-$((2+2))\r');
    await viewer.waitFor('from-alice-4');
    assert.ok(!term.out().includes('from-bob-2'), 'a viewer typed into the shell');
    const hb = await h.api('POST', `/api/terminals/${id}/heartbeat`, {
      token: TOKENS.bob,
      headers: origin,
    });
    assert.equal(hb.status, 403);
    const del = await h.api('DELETE', `/api/terminals/${id}`, {
      token: TOKENS.alice,
      headers: origin,
    });
    assert.equal(del.status, 204);
    const st = await viewer.status;
    assert.equal(st.kind, 'error');
  });

  it('replays the scrollback to a re-attach of the same session and follows resizes', async () => {
    const { id, term } = await open('shell');
    term.session.resize({ cols: 100, rows: 30 });
    term.session.write('echo before-$((3*3)); stty size\r');
    await term.waitFor('before-9');
    await term.waitFor('30 100');
    term.session.close();
    const again = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'shell' },
      headers: origin,
    });
    assert.equal(again.json.id, id);
    const g = await h.api('GET', `/api/terminals/${id}`, { token: TOKENS.alice });
    const back = await attachTerm(h, g.json.attach.url, { ...bearer(TOKENS.alice), ...origin });
    await back.waitFor('before-9');
    back.session.close();
    await h.api('DELETE', `/api/terminals/${id}`, { token: TOKENS.alice, headers: origin });
  });

  it('cleans up a session without heartbeat for ttl: its processes end, attach and API say it is gone', async () => {
    const marker = ['sleep', '7771'];
    const { id, term } = await open('shell');
    term.session.write('sleep 7771 & setsid sleep 7771 & echo started-$((5*5))\r');
    await term.waitFor('started-25');
    for (let i = 0; i < 100 && (await pidsOf(marker)).length < 2; i++) {
      await new Promise((r) => setImmediate(r));
    }
    assert.equal((await pidsOf(marker)).length, 2);

    h.now.ms += 4 * 60_000;
    const hb = await h.api('POST', `/api/terminals/${id}/heartbeat`, {
      token: TOKENS.alice,
      headers: origin,
    });
    assert.equal(hb.status, 204);
    h.now.ms += 4 * 60_000;
    assert.equal(await h.wt.sessions.sweep(), 0, 'a heartbeat 4 min ago keeps a 5 min ttl alive');
    const g0 = await h.api('GET', `/api/terminals/${id}`, { token: TOKENS.alice });

    h.now.ms += 60_000;
    assert.equal(await h.wt.sessions.sweep(), 1);
    assert.deepEqual(await pidsOf(marker), []);
    const st = await term.status;
    assert.ok(st.kind === 'error');
    assert.match(st.message, /expired/);
    const g = await h.api('GET', `/api/terminals/${id}`, { token: TOKENS.alice });
    assert.equal(g.status, 404);
    await assert.rejects(
      attachTerm(h, g0.json.attach.url, { ...bearer(TOKENS.alice), ...origin }),
      (e: unknown) => e instanceof ExecRefusedError && e.status === 404,
    );
  });

  it('ends the processes of a deleted session at once', async () => {
    const marker = ['sleep', '7772'];
    const { id, term } = await open('shell');
    term.session.write('sleep 7772 & echo bg-$((4*4))\r');
    await term.waitFor('bg-16');
    const del = await h.api('DELETE', `/api/terminals/${id}`, {
      token: TOKENS.alice,
      headers: origin,
    });
    assert.equal(del.status, 204);
    assert.deepEqual(await pidsOf(marker), []);
    assert.equal(h.wt.sessions.size, 0);
  });

  it("gives each session its own /tmp, /var/tmp and /dev/shm: what alice's sandbox writes there, bob's and the host do not see", async () => {
    const files = ['/tmp', '/var/tmp', '/dev/shm'].map((d) => `${d}/hp-wt-private-${process.pid}`);
    const a = await open('shell', TOKENS.alice);
    const b = await open('shell', TOKENS.bob);
    try {
      a.term.session.write(
        `for f in ${files.join(' ')}; do echo from-alice > $f; done; ` +
          `echo wrote=$(cat ${files.join(' ')} | grep -c from-alice)\r`,
      );
      await a.term.waitFor('wrote=3');
      for (const f of files) assert.equal(existsSync(f), false, `the host sees ${f}`);
      b.term.session.write(
        `echo seen=$(cat ${files.join(' ')} 2>/dev/null | grep -c from-alice)\r`,
      );
      await b.term.waitFor(/seen=\d/);
      assert.match(b.term.out(), /seen=0/);
    } finally {
      a.term.session.close();
      b.term.session.close();
      for (const [s, token] of [
        [a, TOKENS.alice],
        [b, TOKENS.bob],
      ] as const) {
        await h.api('DELETE', `/api/terminals/${s.id}`, { token, headers: origin });
      }
      for (const f of files) await rm(f, { force: true });
    }
  });

  it('answers 429 with Retry-After over the per-user maximum, and counts users apart', async () => {
    const ids: string[] = [];
    for (const target of ['shell', 'shell-2']) {
      const r = await h.api('POST', '/api/terminals', {
        token: TOKENS.alice,
        body: { target },
        headers: origin,
      });
      assert.equal(r.status, 201);
      ids.push(r.json.id);
    }
    const over = await h.api('POST', '/api/terminals', {
      token: TOKENS.olga,
      body: { target: 'ops' },
      headers: origin,
    });
    assert.equal(over.status, 201, 'another user has her own quota');
    ids.push(over.json.id);
    const third = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'ops' },
      headers: origin,
    });
    assert.equal(third.status, 404, 'alice is no operator: the ops target does not exist for her');
    const list = await h.api('GET', '/api/terminals', { token: TOKENS.alice });
    assert.equal(list.json.terminals.length, 2);
    const cfg = testConfig('[sessions]\nmax_per_user = 1\nmax_total = 2\n');
    const h2 = await startHarness({ config: cfg, pki: h.pki });
    try {
      const a = await h2.api('POST', '/api/terminals', {
        token: TOKENS.alice,
        body: { target: 'shell' },
        headers: { origin: h2.wt.origin },
      });
      assert.equal(a.status, 201);
      const b = await h2.api('POST', '/api/terminals', {
        token: TOKENS.alice,
        body: { target: 'shell-2' },
        headers: { origin: h2.wt.origin },
      });
      assert.equal(b.status, 429);
      assert.equal(b.json.reason, 'TooManyRequests');
      assert.match(String(b.headers['retry-after']), /^\d+$/);
      const olga = await h2.api('POST', '/api/terminals', {
        token: TOKENS.olga,
        body: { target: 'shell' },
        headers: { origin: h2.wt.origin },
      });
      assert.equal(olga.status, 201, 'the second session of the server');
      const bob = await h2.api('POST', '/api/terminals', {
        token: TOKENS.bob,
        body: { target: 'shell' },
        headers: { origin: h2.wt.origin },
      });
      assert.equal(bob.status, 503, 'max_total = 2 holds for everyone together');
      assert.equal(bob.json.reason, 'ServiceUnavailable');
      assert.match(bob.json.message, /2 sessions, its maximum/);
      assert.match(String(bob.headers['retry-after']), /^\d+$/);
      await h2.api('DELETE', `/api/terminals/${a.json.id}`, {
        token: TOKENS.alice,
        headers: { origin: h2.wt.origin },
      });
      const bobAgain = await h2.api('POST', '/api/terminals', {
        token: TOKENS.bob,
        body: { target: 'shell' },
        headers: { origin: h2.wt.origin },
      });
      assert.equal(bobAgain.status, 201, 'a deleted session frees its place');
    } finally {
      await h2.wt.close();
    }
    for (const id of ids.slice(0, 2)) {
      await h.api('DELETE', `/api/terminals/${id}`, { token: TOKENS.alice, headers: origin });
    }
    await h.api('DELETE', `/api/terminals/${ids[2]!}`, { token: TOKENS.olga, headers: origin });
  });

  it('refuses callers without a valid credential (401) and unknown targets (404)', async () => {
    assert.equal((await h.api('GET', '/api/targets')).status, 401);
    assert.equal((await h.api('GET', '/api/targets', { token: 'wrong' })).status, 401);
    const t = await h.api('GET', '/api/targets', { token: TOKENS.alice });
    assert.deepEqual(
      t.json.targets.map((x: { name: string }) => x.name),
      ['shell', 'shell-2'],
    );
    const ops = await h.api('GET', '/api/targets', { token: TOKENS.olga });
    assert.ok(ops.json.targets.some((x: { name: string }) => x.name === 'ops'));
    const r = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'nope' },
      headers: origin,
    });
    assert.equal(r.status, 404);
  });

  it('logs a browser in with a cookie that needs its own Origin for changes', async () => {
    const login = await h.api('POST', '/api/login', { token: TOKENS.alice, headers: origin });
    assert.equal(login.status, 200);
    const setCookie = String(login.headers['set-cookie']);
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    assert.match(setCookie, /Secure/);
    const cookie = setCookie.split(';')[0]!;
    const who = await h.api('GET', '/api/whoami', { headers: { cookie } });
    assert.equal(who.status, 200);
    assert.equal(who.json.user, 'alice');
    assert.equal(who.json.method, 'cookie');
    const noOrigin = await h.api('POST', '/api/terminals', {
      body: { target: 'shell' },
      headers: { cookie },
    });
    assert.equal(noOrigin.status, 403);
    const evil = await h.api('POST', '/api/terminals', {
      body: { target: 'shell' },
      headers: { cookie, origin: 'https://evil.example' },
    });
    assert.equal(evil.status, 403);
    const out = await h.api('POST', '/api/logout', { headers: { cookie, ...origin } });
    assert.equal(out.status, 204);
    assert.equal((await h.api('GET', '/api/whoami', { headers: { cookie } })).status, 401);
  });

  it('sends the security headers with connect-src limited to self and the allowlist', async () => {
    const r = await h.api('GET', '/api/whoami', { token: TOKENS.alice });
    const csp = String(r.headers['content-security-policy']);
    assert.match(
      csp,
      /connect-src 'self' wss:\/\/\*\.seed\.example\.com https:\/\/\*\.seed\.example\.com(;|$)/,
    );
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.equal(r.headers['x-frame-options'], 'DENY');
  });
});

describe('webterminal over plain HTTP behind a TLS-terminating proxy', { timeout: 60_000 }, () => {
  it('sets a Secure login cookie and takes the browser Origin from public_origins', async () => {
    const proxied = 'https://term.example.com';
    const h = await startHarness({
      plainHttp: true,
      config: { ...testConfig(), public_origins: [proxied] },
    });
    try {
      assert.match(h.wt.origin, /^http:/);
      const login = await h.api('POST', '/api/login', {
        token: TOKENS.alice,
        headers: { origin: proxied },
      });
      assert.equal(login.status, 200, JSON.stringify(login.json));
      const setCookie = String(login.headers['set-cookie']);
      assert.match(setCookie, /; Secure(;|$)/);
      const cookie = setCookie.split(';')[0]!;
      const c = await h.api('POST', '/api/terminals', {
        body: { target: 'shell' },
        headers: { cookie, origin: proxied },
      });
      assert.equal(c.status, 201, JSON.stringify(c.json));
      const g = await h.api('GET', `/api/terminals/${c.json.id}`, { headers: { cookie } });
      assert.equal(g.status, 200, JSON.stringify(g.json));
      assert.match(g.json.attach.url, /^wss:\/\/term\.example\.com\/api\/terminals\//);
      const local = await h.api('POST', '/api/login', {
        token: TOKENS.alice,
        headers: { origin: h.wt.origin },
      });
      assert.equal(local.status, 403, 'only public_origins are browser origins');
    } finally {
      await h.wt.close();
    }
  });
});

describe('webterminal client certificates', { timeout: 60_000 }, () => {
  it('identifies a caller by a client certificate the configured CA signed', async () => {
    const h = await startHarness({ clientCa: true });
    try {
      const who = await h.api('GET', '/api/whoami', { cert: await h.pki.client('carol') });
      assert.equal(who.status, 200);
      assert.equal(who.json.user, 'carol');
      assert.equal(who.json.method, 'certificate');
      assert.equal((await h.api('GET', '/api/whoami')).status, 401);
    } finally {
      await h.wt.close();
    }
  });
});
