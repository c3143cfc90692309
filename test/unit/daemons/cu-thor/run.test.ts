import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { createMemoryLogger } from '../../../../shared/log/index.ts';
import { loadJobExec } from '../../../../shared/proto/index.ts';
import { runCli } from '../../../../daemons/cu-thor/run.ts';
import { EXIT } from '../../../../daemons/cu-thor/args.ts';
import {
  createJobExecutorService,
  SERVER_CHANNEL_OPTIONS,
} from '../../../../daemons/cu-thor-server/service.ts';
import { ReloadableServerCredentials } from '../../../../daemons/cu-thor-server/credentials.ts';
import { FakeExecutor } from '../cu-thor-server/fake-executor.ts';
import { makePki } from '../cu-thor-server/tls-fixture.ts';

class Capture extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

const pki = await makePki(['client1']);

describe('cu-thor against a server', () => {
  const executor = new FakeExecutor();
  let server: grpc.Server;
  let dir = '';
  let env: NodeJS.ProcessEnv = {};

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cu-thor-run-'));
    const creds = path.join(dir, 'creds');
    await mkdir(creds);
    await writeFile(path.join(creds, 'ca.crt'), pki.ca);
    await writeFile(path.join(creds, 'client.crt'), pki.clients['client1']!.cert);
    await writeFile(path.join(creds, 'client.key'), pki.clients['client1']!.key);
    const service = createJobExecutorService({ executor, log: createMemoryLogger().log });
    server = new grpc.Server(SERVER_CHANNEL_OPTIONS);
    server.addService(loadJobExec().hostplane.jobexec.v1.JobExecutor.service, service.handlers);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(
        '127.0.0.1:0',
        new ReloadableServerCredentials({ ca: pki.ca, cert: pki.server.cert, key: pki.server.key }),
        (err, p) => {
          if (err) reject(err);
          else resolve(p);
        },
      );
    });
    env = { CUTHOR_SERVER: `localhost:${port}`, CUTHOR_CLIENT_CRED_LOCATION: creds };
  });

  after(async () => {
    server.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  async function cli(
    argv: string[],
    extraEnv: NodeJS.ProcessEnv = {},
  ): Promise<{ code: number; out: string; err: string; outBytes: Buffer }> {
    const stdout = new Capture();
    const stderr = new Capture();
    const code = await runCli(argv, { stdout, stderr, env: { ...env, ...extraEnv } });
    return { code, out: stdout.text(), err: stderr.text(), outBytes: Buffer.concat(stdout.chunks) };
  }

  it('start prints the new execution id and nothing else', async () => {
    const r = await cli(['start', '--command', 'head', '--', '-n10', '/dev/random']);
    assert.equal(r.code, EXIT.ok, r.err);
    assert.match(r.out, /^[0-9a-f-]{36}\n$/);
    const job = executor.jobs.get(r.out.trim());
    assert.ok(job);
    assert.equal(job.info().command, 'head');
    assert.deepEqual(job.info().args, ['-n10', '/dev/random']);
    assert.equal(job.info().owner, 'client1');
  });

  it('status --json and list --json describe the execution', async () => {
    const id = (await cli(['start', '--command', 'sleep', '5'])).out.trim();
    const status = await cli(['status', '--id', id, '--json']);
    assert.equal(status.code, EXIT.ok, status.err);
    const s = JSON.parse(status.out) as {
      id: string;
      status: string;
      owner: string;
      args: string[];
    };
    assert.deepEqual([s.id, s.status, s.owner, s.args], [id, 'running', 'client1', ['5']]);
    const list = await cli(['list', '--json']);
    const l = JSON.parse(list.out) as { id: string }[];
    assert.ok(l.some((e) => e.id === id));
    const text = await cli(['list']);
    assert.match(text.out, /^ID\s+STATUS\s+STARTED\s+COMMAND\n/);
    assert.ok(text.out.includes(id));
  });

  it('output writes the job stdout to stdout and its stderr to stderr, byte for byte', async () => {
    const id = (await cli(['start', '--command', 'job'])).out.trim();
    const job = executor.jobs.get(id)!;
    const binary = Buffer.from([0, 1, 2, 255, 10]);
    job.emit({ kind: 'data', stream: 'stdout', data: Buffer.from('out-1\n') });
    job.emit({ kind: 'data', stream: 'stderr', data: Buffer.from('err-1\n') });
    job.emit({ kind: 'data', stream: 'stdout', data: binary });
    job.finish('exited', 0);
    const r = await cli(['output', '--id', id]);
    assert.equal(r.code, EXIT.ok);
    assert.ok(r.outBytes.equals(Buffer.concat([Buffer.from('out-1\n'), binary])));
    assert.equal(r.err, 'err-1\n');
  });

  it('output into a pipe whose reader left exits 141 quietly, like machine-exec', async () => {
    const id = (await cli(['start', '--command', 'job'])).out.trim();
    const job = executor.jobs.get(id)!;
    job.emit({ kind: 'data', stream: 'stdout', data: Buffer.alloc(256 * 1024, 'x') });
    job.emit({ kind: 'data', stream: 'stdout', data: Buffer.alloc(256 * 1024, 'y') });
    // a pipe whose reader left: every write fails with EPIPE
    const stdout = new Writable({
      highWaterMark: 1024,
      write(_chunk, _enc, cb) {
        setImmediate(() => {
          cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
        });
      },
    });
    const stderr = new Capture();
    try {
      const code = await runCli(['output', '--id', id], { stdout, stderr, env });
      assert.equal(code, EXIT.brokenPipe);
      assert.equal(stderr.text(), '');
    } finally {
      job.finish('exited', 0);
    }
  });

  it('stop waits for the end and shows the final status', async () => {
    const id = (await cli(['start', '--command', 'sleep'])).out.trim();
    const r = await cli(['stop', '--id', id]);
    assert.equal(r.code, EXIT.ok, r.err);
    assert.match(r.out, /^status:\s+stopped$/m);
  });

  it('a refusal from the server is exit 1 with one line on stderr', async () => {
    const r = await cli(['status', '--id', '00000000-0000-4000-8000-000000000000']);
    assert.equal(r.code, EXIT.refused);
    assert.equal(r.out, '');
    assert.match(r.err, /^cu-thor: status: not found: execution \S+ not found\n$/);
    const bad = await cli(['status', '--id', 'nope']);
    assert.equal(bad.code, EXIT.refused);
    assert.match(bad.err, /^cu-thor: status: invalid argument: .*not a UUID\n$/);
  });

  it('an unreachable server is exit 3', async () => {
    const r = await cli(['list'], { CUTHOR_SERVER: '127.0.0.1:1' });
    assert.equal(r.code, EXIT.connection);
    assert.match(r.err, /^cu-thor: list: cannot reach server 127\.0\.0\.1:1: .*\n$/);
    assert.equal(r.err.split('\n').length, 2, 'one line, no stack trace');
  });

  it('missing credentials are exit 4 naming the file', async () => {
    const r = await cli(['list'], { CUTHOR_CLIENT_CRED_LOCATION: path.join(dir, 'nowhere') });
    assert.equal(r.code, EXIT.credentials);
    assert.match(r.err, /reading client credentials .*nowhere\/ca\.crt: ENOENT/);
  });

  it('a usage error is exit 2 and contacts nobody', async () => {
    const r = await cli(['stop'], { CUTHOR_SERVER: '127.0.0.1:1' });
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /stop needs --id ID/);
  });
});

describe('cu-thor and Ctrl-C', () => {
  // a server that accepts connections and never answers: every call hangs
  let silent: net.Server;
  const sockets: net.Socket[] = [];
  let env: NodeJS.ProcessEnv = {};
  let dir = '';

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cu-thor-sigint-'));
    const creds = path.join(dir, 'creds');
    await mkdir(creds);
    await writeFile(path.join(creds, 'ca.crt'), pki.ca);
    await writeFile(path.join(creds, 'client.crt'), pki.clients['client1']!.cert);
    await writeFile(path.join(creds, 'client.key'), pki.clients['client1']!.key);
    silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    env = { CUTHOR_SERVER: `127.0.0.1:${port}`, CUTHOR_CLIENT_CRED_LOCATION: creds };
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    silent.close();
    await rm(dir, { recursive: true, force: true });
  });

  const id = '00000000-0000-4000-8000-000000000000';
  for (const argv of [
    ['start', '--command', 'true'],
    ['list'],
    ['status', '--id', id],
    ['stop', '--id', id],
    ['output', '--id', id],
  ]) {
    it(`${argv[0]}: Ctrl-C cancels the call and exits 130`, async () => {
      const interrupted = new AbortController();
      const stdout = new Capture();
      const stderr = new Capture();
      const running = runCli(argv, { stdout, stderr, env, signal: interrupted.signal });
      await new Promise((r) => setTimeout(r, 200));
      interrupted.abort();
      const code = await Promise.race([
        running,
        new Promise((r) => setTimeout(r, 3_000, 'still running 3 s after Ctrl-C')),
      ]);
      assert.equal(code, EXIT.interrupted);
    });
  }
});
