import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { loadJobExec } from '../../../shared/proto/index.ts';
import type { JobExecutorClient } from '../../../shared/proto/jobexec.ts';
import { EXIT } from '../../../daemons/cu-thor/args.ts';
import { createRunner } from '../../../shared/exec/index.ts';
import { silentLogger } from '../../../shared/log/index.ts';

const CLI_MAIN = path.resolve(import.meta.dirname, '../../../daemons/cu-thor/main.ts');
import { cleanup, cli, fixture, startServer, type Fixture, type RunningServer } from './helpers.ts';

interface StatusJson {
  id: string;
  status: string;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  owner: string;
  outputBytes: number;
}

describe('cu-thor end to end against cu-thor-server (host, namespaces only)', () => {
  let f: Fixture;
  let server: RunningServer;

  before(async () => {
    f = await fixture();
    server = await startServer(f, 'stop_grace = "2s"');
  });

  after(async () => {
    await server.stop();
    await cleanup(f);
  });

  const status = async (
    id: string,
    who: 'client1' | 'client2' = 'client1',
  ): Promise<StatusJson> => {
    const r = await cli(f, server, who, ['status', '--id', id, '--json']);
    assert.equal(r.code, EXIT.ok, r.err);
    return JSON.parse(r.out) as StatusJson;
  };

  async function grpcClient(
    who: 'client1' | 'client2',
    maxVersion?: 'TLSv1.2',
  ): Promise<JobExecutorClient> {
    const dir = path.join(f.certs, who);
    const [ca, cert, key] = await Promise.all(
      ['ca.crt', 'client.crt', 'client.key'].map((n) => readFile(path.join(dir, n))),
    );
    const creds = grpc.credentials.createFromSecureContext(
      tls.createSecureContext({ ca, cert, key, ...(maxVersion ? { maxVersion } : {}) }),
    );
    return new (loadJobExec().hostplane.jobexec.v1.JobExecutor)(server.address, creds);
  }

  it('the cu-thor program talks to an IP address without a TLS server-name warning', async () => {
    const runner = createRunner({ log: silentLogger(), allow: [process.execPath] });
    const ip = server.address.replace('localhost', '127.0.0.1');
    const r = await runner.run(
      [process.execPath, '--import', 'tsx', CLI_MAIN, '--server', ip, 'list', '--json'],
      {
        cwd: path.resolve(import.meta.dirname, '../../..'),
        env: { CUTHOR_CLIENT_CRED_LOCATION: path.join(f.certs, 'client1') },
        timeoutMs: 60_000,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Array.isArray(JSON.parse(r.stdout)));
    assert.equal(r.stderr, '', 'nothing on stderr (Node warns DEP0123 for an IP as SNI)');
  });

  it('READY status says jobs run with namespaces only when cgroups are not usable', () => {
    assert.match(server.status, /^listening on 127\.0\.0\.1:\d+; jobs run with namespaces only/);
  });

  it('start prints an id; output streams stdout and stderr; status shows the exit', async () => {
    const start = await cli(f, server, 'client1', [
      'start',
      '--command',
      'sh',
      '--',
      '-c',
      'echo "pid $$"; echo oops >&2; ls /proc | grep -c "^[0-9]"; exit 3',
    ]);
    assert.equal(start.code, EXIT.ok, start.err);
    const id = start.out.trim();
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const out = await cli(f, server, 'client1', ['output', '--id', id]);
    assert.equal(out.code, EXIT.ok, out.err);
    const lines = out.out.trim().split('\n');
    assert.match(lines[0] ?? '', /^pid \d+$/);
    // its own PID namespace: only a handful of processes (init, sh, ls, grep)
    assert.ok(Number(lines[1]) <= 5, `processes visible: ${lines[1] ?? ''}`);
    assert.equal(out.err, 'oops\n');
    const s = await status(id);
    assert.equal(s.status, 'exited');
    assert.equal(s.exitCode, 3);
    assert.equal(s.owner, 'client1');
    const list = await cli(f, server, 'client1', ['list', '--json']);
    assert.ok((JSON.parse(list.out) as StatusJson[]).some((e) => e.id === id));
  });

  it('stop delivers SIGTERM that the command handles, and the job ends as stopped', async () => {
    const id = (
      await cli(f, server, 'client1', [
        'start',
        '--command',
        'sh',
        '--',
        '-c',
        'trap "echo got TERM; exit 0" TERM; echo ready; while :; do sleep 0.05; done',
      ])
    ).out.trim();
    // wait until the trap is installed (the job printed "ready")
    const deadline = Date.now() + 10_000;
    while ((await status(id)).outputBytes === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const stop = await cli(f, server, 'client1', ['stop', '--id', id, '--json']);
    assert.equal(stop.code, EXIT.ok, stop.err);
    assert.equal((JSON.parse(stop.out) as StatusJson).status, 'stopped');
    const out = await cli(f, server, 'client1', ['output', '--id', id]);
    assert.equal(out.out, 'ready\ngot TERM\n');
  });

  it('a job ignoring SIGTERM is killed after stop_grace', async () => {
    const id = (
      await cli(f, server, 'client1', [
        'start',
        '--command',
        'sh',
        '--',
        '-c',
        'trap "" TERM; echo x; while :; do sleep 0.05; done',
      ])
    ).out.trim();
    const deadline = Date.now() + 10_000;
    while ((await status(id)).outputBytes === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const t0 = Date.now();
    const stop = await cli(f, server, 'client1', ['stop', '--id', id, '--json']);
    assert.equal(stop.code, EXIT.ok, stop.err);
    assert.equal((JSON.parse(stop.out) as StatusJson).status, 'killed');
    assert.ok(Date.now() - t0 >= 1_500, 'it waited for the grace period');
  });

  it('client2 gets NOT_FOUND for client1 executions and does not see them in its list', async () => {
    const id = (await cli(f, server, 'client1', ['start', '--command', 'true'])).out.trim();
    for (const argv of [
      ['status', '--id', id],
      ['stop', '--id', id],
      ['output', '--id', id],
    ]) {
      const r = await cli(f, server, 'client2', argv);
      assert.equal(r.code, EXIT.refused, argv.join(' '));
      assert.match(r.err, /not found/);
    }
    const list = await cli(f, server, 'client2', ['list', '--json']);
    assert.ok(!(JSON.parse(list.out) as StatusJson[]).some((e) => e.id === id));
  });

  it('a missing binary gives an execution that failed to start, with a reason naming it', async () => {
    const start = await cli(f, server, 'client1', ['start', '--command', '/nonexistent/binary']);
    assert.equal(start.code, EXIT.ok, start.err);
    const id = start.out.trim();
    const deadline = Date.now() + 10_000;
    let s = await status(id);
    while (s.status === 'running' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      s = await status(id);
    }
    assert.equal(s.status, 'failed_to_start');
    assert.equal(s.reason, 'starting "/nonexistent/binary": No such file or directory');
  });

  it('bad requests are INVALID_ARGUMENT with a clear message', async () => {
    const c = await grpcClient('client1');
    const call = (req: Parameters<JobExecutorClient['executeCommand']>[0]) =>
      new Promise<void>((resolve, reject) => {
        c.executeCommand(req, (err) => {
          if (err) reject(err);
          else resolve();
        });
      });
    const invalid = async (p: Promise<unknown>, re: RegExp) => {
      await assert.rejects(p, (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.INVALID_ARGUMENT, e.details);
        assert.match(e.details, re);
        return true;
      });
    };
    try {
      await invalid(call({ command: '' }), /command is empty/);
      await invalid(call({ command: 'echo', args: ['a'.repeat(200_000)] }), /bytes, more than/);
      await invalid(
        call({ command: 'echo', limits: { cpuPercent: 5000 } }),
        /above the configured maximum/,
      );
      await invalid(
        new Promise((resolve, reject) => {
          c.getExecution({ id: 'not-a-uuid' }, (err) => {
            if (err) reject(err);
            else resolve(undefined);
          });
        }),
        /not a UUID/,
      );
    } finally {
      c.close();
    }
  });

  it('a TLS 1.2-only client is refused', async () => {
    const c = await grpcClient('client1', 'TLSv1.2');
    try {
      await assert.rejects(
        new Promise((resolve, reject) => {
          c.listAllExecutions({}, (err, res) => {
            if (err) reject(err);
            else resolve(res);
          });
        }),
        (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE,
      );
    } finally {
      c.close();
    }
    // and the raw handshake says why
    const err = await new Promise<Error>((resolve) => {
      const port = Number(server.address.split(':').pop());
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        maxVersion: 'TLSv1.2',
        rejectUnauthorized: false,
      });
      s.once('error', resolve);
      s.once('secureConnect', () => {
        s.destroy();
        resolve(new Error('handshake succeeded'));
      });
    });
    assert.match(err.message, /protocol version|alert/i);
  });
});
