// A machine target through the real exec chain on 127.0.0.1: browser client → webterminal →
// (per-session client certificate) exec-gateway → machinepoollet → machinebroker → sandbox.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { issueCertificate, type Credentials } from '../../../shared/pki/index.ts';
import { connectExec, ExecRefusedError } from '../../../shared/stream/client.ts';
import { SESSION_UNIT_PREFIX } from '../../../daemons/webterminal/machine.ts';
import { startChain, type Chain } from '../machine-exec/fixture.ts';
import { eventually } from '../machine-exec/helpers.ts';
import { attachTerm, startHarness, testConfig, TOKENS, type Harness } from './helpers.ts';

const TTL_S = 3;

describe('webterminal machine target through exec-gateway', { timeout: 120_000 }, () => {
  let chain: Chain;
  let h: Harness;
  const issued: { at: number; cred: Credentials }[] = [];
  const origin = (): Record<string, string> => ({ origin: h.wt.origin });
  const bearer = { authorization: `Bearer ${TOKENS.alice}` };

  before(async () => {
    chain = await startChain([{ name: 'm1', target: '{ type = "sandbox" }' }]);
    const caCert = path.join(chain.dir, 'session-ca.crt');
    const caKey = path.join(chain.dir, 'session-ca.key');
    await writeFile(caCert, chain.ca.cert);
    await writeFile(caKey, chain.ca.key, { mode: 0o600 });
    h = await startHarness({
      // the injected clock stands still, so the session itself never expires here; its
      // certificate's validity (ttl) runs on the real clock
      config: testConfig(
        `[sessions]\nttl = "${TTL_S}s"\n` +
          `[[targets]]\nname = "m1"\ntype = "machine"\ngateway = "${chain.gatewayUrl}"\n` +
          `namespace = "default"\nmachine = "m1"\n` +
          `ca_file = ${JSON.stringify(path.join(chain.dir, 'ca.pem'))}\n` +
          `session_ca_cert_file = ${JSON.stringify(caCert)}\n` +
          `session_ca_key_file = ${JSON.stringify(caKey)}\n`,
      ),
      issue: async (opts) => {
        const cred = await issueCertificate(opts);
        issued.push({ at: Date.now(), cred });
        return cred;
      },
    });
  });
  after(async () => {
    await h.wt.close();
    await chain.close();
  });

  async function open(): Promise<{ id: string; term: Awaited<ReturnType<typeof attachTerm>> }> {
    const c = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target: 'm1' },
      headers: origin(),
    });
    assert.equal(c.status, 201, JSON.stringify(c.json));
    const g = await h.api('GET', `/api/terminals/${c.json.id}`, { token: TOKENS.alice });
    assert.equal(g.status, 200, JSON.stringify(g.json));
    const term = await attachTerm(h, g.json.attach.url, { ...bearer, ...origin() });
    return { id: c.json.id, term };
  }

  it('round-trips output, closes the upstream session on delete, and the session certificate opens nothing after ttl', async () => {
    const { id, term } = await open();
    term.session.write('echo hello-$((6*7))\n');
    await term.waitFor('hello-42');
    assert.equal(chain.gateway.sessionCount(), 1);
    assert.equal(chain.broker.sessionCount(), 1);

    // the credential: alice, her session named, valid for ttl from its issue and no longer
    assert.equal(issued.length, 1);
    const { at, cred } = issued[0]!;
    const x509 = new X509Certificate(cred.certPem);
    // O is exactly alice's groups (none), the session is an OU: exec-gateway sees no extra group
    assert.equal(x509.subject, `OU=${SESSION_UNIT_PREFIX}${id}\nCN=alice`);
    const notAfter = Date.parse(x509.validTo);
    assert.ok(notAfter <= at + TTL_S * 1000, `${x509.validTo} is later than issue + ttl`);
    assert.ok(notAfter > at - 2000, `${x509.validTo} is not about issue + ttl`);

    const del = await h.api('DELETE', `/api/terminals/${id}`, {
      token: TOKENS.alice,
      headers: origin(),
    });
    assert.equal(del.status, 204);
    const st = await term.status;
    assert.equal(st.kind, 'error');
    await eventually(
      () =>
        Promise.resolve(chain.gateway.sessionCount() === 0 && chain.broker.sessionCount() === 0),
      10_000,
      'the upstream session to close',
    );

    // a certificate cannot be un-issued; once its ttl has passed the gateway refuses it
    const wait = notAfter + 1500 - Date.now();
    if (wait > 0) await sleep(wait);
    await assert.rejects(
      connectExec(
        `${chain.gatewayUrl}/apis/compute.ironcore.dev/namespaces/default/machines/m1/exec?tty=true`,
        {
          tls: { ca: chain.ca.cert, cert: cred.certPem, key: cred.keyPem },
          onOutput: () => undefined,
        },
      ),
      (err: unknown) => err instanceof ExecRefusedError && err.status === 401,
    );
  });

  it('mints a new certificate for every session and never reuses one', async () => {
    const before = issued.length;
    const a = await open();
    await h.api('DELETE', `/api/terminals/${a.id}`, { token: TOKENS.alice, headers: origin() });
    const b = await open();
    b.term.session.write('echo again-$((6*7))\n');
    await b.term.waitFor('again-42');
    await h.api('DELETE', `/api/terminals/${b.id}`, { token: TOKENS.alice, headers: origin() });
    assert.equal(issued.length, before + 2);
    const [x, y] = issued.slice(before).map((i) => new X509Certificate(i.cred.certPem));
    assert.notEqual(x!.serialNumber, y!.serialNumber);
    assert.notEqual(
      x!.publicKey.export({ format: 'pem', type: 'spki' }),
      y!.publicKey.export({ format: 'pem', type: 'spki' }),
    );
  });

  it('answers 502 when the gateway refuses the session', async () => {
    const c = await h.api('POST', '/api/terminals', {
      token: TOKENS.bob,
      body: { target: 'm1' },
      headers: origin(),
    });
    assert.equal(c.status, 201);
    const g = await h.api('GET', `/api/terminals/${c.json.id}`, { token: TOKENS.bob });
    assert.equal(g.status, 502, JSON.stringify(g.json));
    assert.match(JSON.stringify(g.json), /user bob may not exec into machine default\/m1/);
  });
});
