import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CLIENT_NAMES, generateCerts } from '../../../scripts/generate-certs.ts';

describe('generate-certs', () => {
  let dir = '';
  let written: string[] = [];
  const cert = async (rel: string): Promise<X509Certificate> =>
    new X509Certificate(await readFile(path.join(dir, rel)));

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'generate-certs-'));
    // the real key sizes: a 4096-bit CA and 2048-bit leaves
    written = await generateCerts({ out: dir, serverNames: ['jobs.example.com', '10.1.2.3'] });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the CA, the server set and one set per client, keys readable by the owner only', async () => {
    const want = [
      'ca.crt',
      'ca.key',
      'server/ca.crt',
      'server/server.crt',
      'server/server.key',
      ...CLIENT_NAMES.flatMap((c) => [`${c}/ca.crt`, `${c}/client.crt`, `${c}/client.key`]),
    ];
    assert.deepEqual(written.map((f) => path.relative(dir, f)).sort(), [...want].sort());
    for (const rel of want) {
      const mode = (await stat(path.join(dir, rel))).mode & 0o777;
      assert.equal(mode, rel.endsWith('.key') ? 0o600 : 0o644, `${rel} mode ${mode.toString(8)}`);
    }
  });

  it('the CA is a 4096-bit self-signed CA and every copy of it is the same', async () => {
    const ca = await cert('ca.crt');
    assert.equal(ca.ca, true);
    assert.equal(ca.publicKey.asymmetricKeyDetails?.modulusLength, 4096);
    assert.ok(ca.verify(ca.publicKey));
    assert.match(ca.subject, /CN=hostplane dev CA/);
    const keyPem = await readFile(path.join(dir, 'ca.key'));
    assert.ok(ca.checkPrivateKey(createPrivateKey(keyPem)));
    for (const d of ['server', ...CLIENT_NAMES]) {
      assert.equal((await cert(`${d}/ca.crt`)).fingerprint256, ca.fingerprint256, d);
    }
  });

  it('the server certificate is a 2048-bit leaf signed by the CA for localhost, loopback and every --server-name', async () => {
    const ca = await cert('ca.crt');
    const server = await cert('server/server.crt');
    assert.equal(server.ca, false);
    assert.ok(server.verify(ca.publicKey));
    assert.ok(server.checkIssued(ca));
    assert.equal(server.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
    assert.ok(server.checkHost('localhost'));
    assert.ok(server.checkHost('jobs.example.com'));
    assert.ok(server.checkIP('127.0.0.1'));
    assert.ok(server.checkIP('::1'));
    assert.ok(server.checkIP('10.1.2.3'));
    assert.equal(server.checkHost('other.example.com'), undefined);
    assert.deepEqual(server.keyUsage, ['1.3.6.1.5.5.7.3.1']); // serverAuth only
    const key = await readFile(path.join(dir, 'server/server.key'));
    assert.ok(server.checkPrivateKey(createPrivateKey(key)));
  });

  it('client certificates carry CN client1 and client2, client auth only, signed by the CA', async () => {
    const ca = await cert('ca.crt');
    for (const cn of CLIENT_NAMES) {
      const c = await cert(`${cn}/client.crt`);
      assert.match(c.subject, new RegExp(`^CN=${cn}$`, 'm'));
      assert.ok(c.verify(ca.publicKey));
      assert.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.2']); // clientAuth only
      assert.equal(c.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
      const key = await readFile(path.join(dir, `${cn}/client.key`));
      assert.ok(c.checkPrivateKey(createPrivateKey(key)));
    }
  });
});
