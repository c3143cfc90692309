// What openssl itself reads from certificates made by shared/pki.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRunner, type Runner } from '../../../../shared/exec/index.ts';
import { silentLogger } from '../../../../shared/log/index.ts';
import { createCA, issueCertificate, writeCredentials } from '../../../../shared/pki/index.ts';

const OPENSSL = '/usr/bin/openssl';

describe('shared/pki certificates as openssl reads them', () => {
  let dir = '';
  let runner: Runner;
  const text = async (file: string): Promise<string> =>
    (await runner.run([OPENSSL, 'x509', '-noout', '-text', '-in', file])).stdout;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hostplane-openssl-'));
    runner = createRunner({ log: silentLogger(), allow: [OPENSSL] });
    const ca = await createCA({ commonName: 'hostplane CA', bits: 2048 });
    const [server, client] = await Promise.all([
      issueCertificate({
        ca,
        commonName: 'srv',
        dnsNames: ['localhost'],
        ipAddresses: ['127.0.0.1'],
        usage: 'server',
      }),
      issueCertificate({ ca, commonName: 'alice', organizations: ['admins'], usage: 'client' }),
    ]);
    await writeCredentials(dir, {
      'ca.crt': ca.certPem,
      'server.crt': server.certPem,
      'client.crt': client.certPem,
    });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('marks the CA as a CA that signs certificates, with its own key identifiers', async () => {
    const t = await text(path.join(dir, 'ca.crt'));
    assert.match(t, /X509v3 Basic Constraints: critical\s+CA:TRUE/);
    assert.match(t, /X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
    const ski = /X509v3 Subject Key Identifier:\s+([0-9A-F:]+)/.exec(t)?.[1];
    const aki = /X509v3 Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)/.exec(t)?.[1];
    assert.ok(ski !== undefined && ski === aki, `SKI ${ski} = AKI ${aki}`);
    assert.match(t, /Signature Algorithm: sha256WithRSAEncryption/);
  });

  it('gives a server certificate serverAuth only, its SANs, and the CA as authority', async () => {
    const t = await text(path.join(dir, 'server.crt'));
    const caText = await text(path.join(dir, 'ca.crt'));
    const caSki = /X509v3 Subject Key Identifier:\s+([0-9A-F:]+)/.exec(caText)?.[1];
    assert.match(t, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    assert.match(t, /X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment/);
    assert.match(t, /X509v3 Extended Key Usage:\s+TLS Web Server Authentication\n/);
    assert.match(t, /DNS:localhost, IP Address:127\.0\.0\.1/);
    const aki = /X509v3 Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)/.exec(t)?.[1];
    assert.equal(aki, caSki);
  });

  it('gives a client certificate clientAuth only and its organization', async () => {
    const t = await text(path.join(dir, 'client.crt'));
    assert.match(t, /X509v3 Extended Key Usage:\s+TLS Web Client Authentication\n/);
    assert.match(t, /Subject: O ?= ?admins, CN ?= ?alice/);
  });

  it('verifies both leaves against the CA', async () => {
    const r = await runner.run([
      OPENSSL,
      'verify',
      '-CAfile',
      path.join(dir, 'ca.crt'),
      path.join(dir, 'server.crt'),
      path.join(dir, 'client.crt'),
    ]);
    assert.match(r.stdout, /server\.crt: OK\n.*client\.crt: OK/);
  });
});
