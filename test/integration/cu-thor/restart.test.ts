import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { EXIT } from '../../../daemons/cu-thor/args.ts';
import { createRunner } from '../../../shared/exec/index.ts';
import { createMemoryLogger } from '../../../shared/log/index.ts';
import { nsInitPath } from '../../../shared/ns/index.ts';
import { issueCertificate, writeCredentials } from '../../../shared/pki/index.ts';
import { quickstart } from '../../../scripts/quickstart.ts';
import { cleanup, cli, fixture, startServer, type Fixture } from './helpers.ts';

interface StatusJson {
  id: string;
  status: string;
  exitCode: number | null;
  reason: string | null;
}

describe('cu-thor-server across restarts', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
  });
  after(async () => {
    await cleanup(f);
  });

  it('metadata and output survive a restart; a job stopped by the shutdown says so', async () => {
    const first = await startServer(f, 'stop_grace = "1s"', 'restart-state');
    const done = (
      await cli(f, first, 'client1', [
        'start',
        '--command',
        'sh',
        '--',
        '-c',
        'echo kept; echo err >&2',
      ])
    ).out.trim();
    const out1 = await cli(f, first, 'client1', ['output', '--id', done]);
    assert.equal(out1.out, 'kept\n');
    const long = (
      await cli(f, first, 'client1', ['start', '--command', 'sleep', '600'])
    ).out.trim();
    await first.stop();

    const second = await startServer(f, 'stop_grace = "1s"', 'restart-state');
    try {
      const list = await cli(f, second, 'client1', ['list', '--json']);
      assert.equal(list.code, EXIT.ok, list.err);
      const byId = new Map((JSON.parse(list.out) as StatusJson[]).map((e) => [e.id, e]));
      assert.equal(byId.get(done)?.status, 'exited');
      assert.equal(byId.get(done)?.exitCode, 0);
      // the drain stopped it (SIGTERM → sleep dies of it) rather than leaving it to systemd
      assert.ok(
        ['stopped', 'killed'].includes(byId.get(long)?.status ?? ''),
        JSON.stringify(byId.get(long)),
      );
      const out2 = await cli(f, second, 'client1', ['output', '--id', done]);
      assert.equal(out2.out, 'kept\n');
      assert.equal(out2.err, 'err\n');
      // and ownership survives too
      const other = await cli(f, second, 'client2', ['status', '--id', done]);
      assert.equal(other.code, EXIT.refused);
    } finally {
      await second.stop();
    }
  });

  /** Issues a new server certificate from the fixture's CA and writes it over the old one. */
  async function replaceServerCertificate(): Promise<string> {
    const [certPem, keyPem] = await Promise.all(
      ['ca.crt', 'ca.key'].map((n) => readFile(path.join(f.certs, n), 'utf8')),
    );
    const next = await issueCertificate({
      ca: { certPem: certPem!, keyPem: keyPem! },
      commonName: 'localhost',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
      usage: 'server',
    });
    await writeCredentials(path.join(f.certs, 'server'), {
      'server.key': next.keyPem,
      'server.crt': next.certPem,
    });
    return new X509Certificate(next.certPem).fingerprint256;
  }

  /** The fingerprint of the certificate the server presents to a new handshake. */
  async function presented(address: string): Promise<string> {
    const dir = path.join(f.certs, 'client1');
    const [ca, cert, key] = await Promise.all(
      ['ca.crt', 'client.crt', 'client.key'].map((n) => readFile(path.join(dir, n))),
    );
    const port = Number(address.split(':').at(-1));
    return new Promise((resolve, reject) => {
      const s = tls.connect(
        { host: '127.0.0.1', port, servername: 'localhost', ca, cert, key, ALPNProtocols: ['h2'] },
        () => {
          resolve(s.getPeerCertificate().fingerprint256);
          s.destroy();
        },
      );
      s.on('error', reject);
    });
  }

  it('reload swaps in the certificate files without dropping the listener', async () => {
    const server = await startServer(f, '', 'reload-state');
    try {
      const old = await presented(server.address);
      const fingerprint = await replaceServerCertificate();
      assert.notEqual(fingerprint, old);
      await server.reload();
      assert.equal(await presented(server.address), fingerprint);
      const r = await cli(f, server, 'client1', ['list']);
      assert.equal(r.code, EXIT.ok, r.err);
      assert.ok(server.records.some((rec) => rec['msg'] === 'tls certificates reloaded'));
    } finally {
      await server.stop();
    }
  });

  it('a certificate replaced on disk is used for new handshakes without a reload', async () => {
    const server = await startServer(f, '', 'watch-state');
    try {
      const fingerprint = await replaceServerCertificate();
      // the watcher reads the files 100 ms after the last change
      const t0 = Date.now();
      let now = await presented(server.address);
      while (now !== fingerprint && Date.now() - t0 < 10_000) {
        await new Promise((r) => setTimeout(r, 50));
        now = await presented(server.address);
      }
      assert.equal(now, fingerprint);
      const r = await cli(f, server, 'client1', ['list']);
      assert.equal(r.code, EXIT.ok, r.err);
    } finally {
      await server.stop();
    }
  });

  it('a reload with a key that does not match its certificate fails and keeps the old one', async () => {
    const server = await startServer(f, '', 'bad-reload-state');
    try {
      const old = await presented(server.address);
      const other = await readFile(path.join(f.certs, 'client1', 'client.key'), 'utf8');
      const dir = path.join(f.dir, 'bad-tls');
      await writeCredentials(dir, {
        'ca.crt': await readFile(path.join(f.certs, 'ca.crt'), 'utf8'),
        'server.crt': await readFile(path.join(f.certs, 'server', 'server.crt'), 'utf8'),
        'server.key': other,
      });
      await assert.rejects(
        server.reloadWith({
          ca_file: path.join(dir, 'ca.crt'),
          cert_file: path.join(dir, 'server.crt'),
          key_file: path.join(dir, 'server.key'),
        }),
        /reloading \[tls\] certificates: loading certificate .*server\.crt with key .*server\.key/,
      );
      assert.equal(await presented(server.address), old);
    } finally {
      await server.stop();
    }
  });
});

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

describe('npm run quickstart -- --once', () => {
  it('generates certificates, starts the daemon, runs a demo job and streams its output', async () => {
    const devDir = await mkdtemp(path.join(os.tmpdir(), 'cu-thor-quickstart-'));
    const out = new Sink();
    const err = new Sink();
    try {
      const code = await quickstart({
        devDir,
        once: true,
        port: 0,
        out,
        err,
        runner: createRunner({
          log: createMemoryLogger().log,
          allow: [process.execPath, nsInitPath()],
        }),
        signal: new AbortController().signal,
      });
      assert.equal(code, 0, err.text);
      assert.match(out.text, /execution id: [0-9a-f-]{36}/);
      assert.match(out.text, /hello from pid \d+ in its own namespaces/);
      assert.match(out.text, /tick 3/);
      assert.match(err.text, /this line goes to stderr/);
      assert.match(out.text, /status:\s+exited \(code 0\)/);
      assert.match(out.text, /export CUTHOR_SERVER=localhost:\d+/);
    } finally {
      await rm(devDir, { recursive: true, force: true });
    }
  });
});
