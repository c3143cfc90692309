import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  createCA,
  issueCertificate,
  writeCredentials,
  type Credentials,
} from '../../../../shared/pki/index.ts';

describe('createCA and issueCertificate', () => {
  let ca: Credentials;
  let server: Credentials;
  let client: Credentials;
  before(async () => {
    ca = await createCA({ commonName: 'hostplane test CA', bits: 2048, days: 30 });
    [server, client] = await Promise.all([
      issueCertificate({
        ca,
        commonName: 'cu-thor-server',
        dnsNames: ['localhost', 'thor.example.com'],
        ipAddresses: ['127.0.0.1', '::1'],
        usage: 'server',
        days: 10,
      }),
      issueCertificate({
        ca,
        commonName: 'alice',
        organizations: ['admins', 'dev'],
        usage: 'client',
      }),
    ]);
  });

  it('makes a self-signed CA certificate marked as a CA, with the requested key size and validity', () => {
    const x = new X509Certificate(ca.certPem);
    assert.equal(x.subject, 'CN=hostplane test CA');
    assert.equal(x.issuer, x.subject);
    assert.equal(x.ca, true);
    assert.ok(x.verify(x.publicKey), 'self-signed');
    assert.equal(x.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
    const days = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / 86_400_000;
    assert.ok(days > 30 && days < 30.01, `${days} days`);
  });

  it('issues a leaf signed by the CA, not a CA itself, with its SANs', () => {
    const x = new X509Certificate(server.certPem);
    const cax = new X509Certificate(ca.certPem);
    assert.equal(x.subject, 'CN=cu-thor-server');
    assert.equal(x.issuer, 'CN=hostplane test CA');
    assert.ok(x.checkIssued(cax));
    assert.ok(x.verify(cax.publicKey));
    assert.equal(x.ca, false);
    assert.equal(
      x.subjectAltName,
      'DNS:localhost, DNS:thor.example.com, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    assert.equal(x.checkHost('thor.example.com'), 'thor.example.com');
    assert.equal(x.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(x.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  });

  it('puts every organization in the subject', () => {
    assert.equal(new X509Certificate(client.certPem).subject, 'O=admins\nO=dev\nCN=alice');
  });

  it('puts organizational units in the subject as OU, apart from the organizations', async () => {
    const c = await issueCertificate({
      ca,
      commonName: 'olga',
      organizations: ['operators'],
      organizationalUnits: ['session=S1'],
      usage: 'client',
      bits: 1024,
    });
    assert.equal(new X509Certificate(c.certPem).subject, 'O=operators\nOU=session=S1\nCN=olga');
  });

  it('encodes names as UTF8String, so that @, _ and names outside ASCII survive', async () => {
    const c = await issueCertificate({
      ca,
      commonName: 'svc_deploy@example.com',
      organizations: ['李雷的组', 'a,b'],
      usage: 'client',
      bits: 1024,
    });
    const x = new X509Certificate(c.certPem);
    assert.equal(x.subject, 'O=李雷的组\nO=a\\,b\nCN=svc_deploy@example.com');
    // 0x0c is the UTF8String tag: the CN's value follows its OID (2.5.4.3 = 55 04 03)
    assert.ok(x.raw.includes(Buffer.from([0x55, 0x04, 0x03, 0x0c])), 'CN is a UTF8String');
  });

  it('returns a private key that belongs to the certificate', () => {
    const x = new X509Certificate(client.certPem);
    assert.ok(x.checkPrivateKey(createPrivateKey(client.keyPem)));
    assert.equal(
      createPublicKey(client.keyPem).export({ type: 'spki', format: 'pem' }),
      x.publicKey.export({ type: 'spki', format: 'pem' }),
    );
  });

  it('gives every certificate a different positive serial number', async () => {
    const serials = new Set<string>();
    for (const c of [ca, server, client]) serials.add(new X509Certificate(c.certPem).serialNumber);
    const again = await issueCertificate({ ca, commonName: 'alice', usage: 'client' });
    serials.add(new X509Certificate(again.certPem).serialNumber);
    assert.equal(serials.size, 4);
    for (const s of serials)
      assert.match(s, /^01[0-9A-F]{32}$/, 'leading 0x01: positive, 128 random bits');
  });

  it('refuses an IP SAN that is not an address', async () => {
    await assert.rejects(
      issueCertificate({ ca, commonName: 'x', ipAddresses: ['10.0.0.300'], usage: 'server' }),
      /issuing certificate for x: "10\.0\.0\.300" is not an IP address/,
    );
  });
});

describe('writeCredentials', () => {
  let dir = '';
  before(async () => {
    dir = path.join(await mkdtemp(path.join(tmpdir(), 'hostplane-pki-')), 'creds');
  });
  after(async () => {
    await rm(path.dirname(dir), { recursive: true, force: true });
  });

  it('writes certificates world-readable and private keys 0600, leaving no temp files', async () => {
    const ca = await createCA({ commonName: 'w', bits: 2048 });
    const old = process.umask(0o077);
    try {
      await writeCredentials(dir, { 'ca.crt': ca.certPem, 'ca.key': ca.keyPem });
    } finally {
      process.umask(old);
    }
    assert.equal((await stat(path.join(dir, 'ca.crt'))).mode & 0o777, 0o644);
    assert.equal((await stat(path.join(dir, 'ca.key'))).mode & 0o777, 0o600);
    assert.equal(await readFile(path.join(dir, 'ca.key'), 'utf8'), ca.keyPem);
    assert.deepEqual((await readdir(dir)).sort(), ['ca.crt', 'ca.key']);
  });

  it('replaces existing files and refuses names with a slash', async () => {
    await writeCredentials(dir, { 'ca.crt': 'new\n' }, { mode: 0o640 });
    assert.equal(await readFile(path.join(dir, 'ca.crt'), 'utf8'), 'new\n');
    assert.equal((await stat(path.join(dir, 'ca.crt'))).mode & 0o777, 0o640);
    await assert.rejects(writeCredentials(dir, { '../x': 'y' }), /is not a file name/);
  });
});
