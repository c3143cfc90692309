import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { EXIT } from '../../../daemons/cu-thor/args.ts';
import { createRunner } from '../../../shared/exec/index.ts';
import { createMemoryLogger } from '../../../shared/log/index.ts';
import { nsInitPath } from '../../../shared/ns/index.ts';
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

  it('reload swaps in the certificate files without dropping the listener', async () => {
    const server = await startServer(f, '', 'reload-state');
    try {
      await server.reload();
      const r = await cli(f, server, 'client1', ['list']);
      assert.equal(r.code, EXIT.ok, r.err);
      assert.ok(server.records.some((rec) => rec['msg'] === 'tls certificates reloaded'));
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
