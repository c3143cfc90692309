import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { createRunner } from '../../../shared/exec/index.ts';
import { silentLogger } from '../../../shared/log/index.ts';
import {
  createRuntimeClient,
  NAME_LABEL,
  NAMESPACE_LABEL,
  type RuntimeClient,
} from '../../../shared/stream/iri.ts';
import { ExecRefusedError, connectExec } from '../../../shared/stream/client.ts';
import { startBroker, type Broker } from '../../../daemons/machinebroker/broker.ts';
import {
  brokerConfig,
  eventually,
  openCollected,
  pidsWith,
  sandboxDeps,
  tempDir,
} from './helpers.ts';

const checkout = path.resolve(import.meta.dirname, '../../..');
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

describe('machinebroker', () => {
  let dir: string;
  // outside /tmp, which a sandbox has a private one of: a path both sides see
  let gate: string;
  let broker: Broker;
  let client: RuntimeClient;
  let now = 1_000_000;
  const yesMarker = `yes-marker-${process.pid}`;
  const INPUT_BYTES = 64 << 20;

  before(async () => {
    dir = await tempDir('broker');
    gate = path.join(await mkdtemp('/run/hostplane-broker-gate-'), 'gate');
    const config = brokerConfig(
      dir,
      `[streaming]\ntoken_ttl = "1m"\nmax_in_flight = 50\n` +
        `[[machines]]\nid = "m1-id"\nnamespace = "default"\nname = "m1"\ntarget = { type = "sandbox" }\n` +
        `[[machines]]\nid = "m2-id"\nnamespace = "other"\nname = "m2"\ntarget = { type = "sandbox", command = ["/bin/sh", "-c", "exit 7"] }\n` +
        `[[machines]]\nid = "gate-id"\nnamespace = "default"\nname = "gate"\ntarget = { type = "sandbox", command = ["/bin/sh", "-c", ${JSON.stringify(
          // reads nothing until the test creates the gate file, then counts its input
          `if [ -t 0 ]; then stty raw -echo; fi; echo READY; ` +
            `while [ ! -e ${gate} ]; do sleep 0.05; done; head -c ${INPUT_BYTES} | wc -c`,
        )}] }\n` +
        `[[machines]]\nid = "yes-id"\nnamespace = "default"\nname = "yes"\ntarget = { type = "sandbox", command = ["/bin/sh", "-c", "exec yes ${yesMarker}"] }\n`,
    );
    broker = await startBroker(config, {
      log: silentLogger(),
      sandbox: await sandboxDeps(),
      clock: () => now,
    });
    client = createRuntimeClient(broker.socketPath);
  });

  after(async () => {
    // what a failed test left behind (processes of our own sessions only)
    for (const pid of await pidsWith(yesMarker)) process.kill(pid, 'SIGKILL');
    client.close();
    await broker.close(100);
    await rm(dir, { recursive: true, force: true });
    await rm(path.dirname(gate), { recursive: true, force: true });
  });

  it('serves the runtime on a unix socket with mode 0660', async () => {
    const st = await stat(broker.socketPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o660);
  });

  it('lists machines with their namespace and name labels, filtered by selector', async () => {
    const all = await client.listMachines({});
    assert.deepEqual(all.map((m) => m.metadata?.id).sort(), [
      'gate-id',
      'm1-id',
      'm2-id',
      'yes-id',
    ]);
    const one = await client.listMachines({ [NAMESPACE_LABEL]: 'other', [NAME_LABEL]: 'm2' });
    assert.deepEqual(
      one.map((m) => m.metadata?.id),
      ['m2-id'],
    );
  });

  it('answers Exec with a loopback token URL', async () => {
    const url = await client.exec('m1-id', false);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]{43}$/);
    assert.ok(url.startsWith(broker.streamingBase));
  });

  it('answers Exec of an unknown machine with NOT_FOUND', async () => {
    await assert.rejects(
      client.exec('nope', false),
      (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND,
    );
  });

  it('runs piped stdin in a sandbox and reports exit status 0', async () => {
    const s = await openCollected(await client.exec('m1-id', false));
    s.session.write('echo hi; echo oops >&2\n');
    s.session.closeStdin();
    assert.deepEqual(await s.status, { kind: 'exited', code: 0 });
    assert.equal(s.stdout(), 'hi\n');
    assert.equal(s.stderr(), 'oops\n');
  });

  it('reports a non-zero exit status', async () => {
    const s = await openCollected(await client.exec('m2-id', false));
    assert.deepEqual(await s.status, { kind: 'exited', code: 7 });
  });

  it('runs the sandbox as PID 2 of its own PID namespace with only lo', async () => {
    const s = await openCollected(await client.exec('m1-id', false));
    s.session.write('echo pid=$$; cat /proc/net/dev; readlink /proc/1/ns/pid\n');
    s.session.closeStdin();
    await s.status;
    assert.match(s.stdout(), /^pid=2$/m);
    assert.doesNotMatch(s.stdout(), /eth0|ens|veth/);
    const { readlink } = await import('node:fs/promises');
    assert.notEqual(s.stdout().trim().split('\n').at(-1), await readlink('/proc/self/ns/pid'));
  });

  it('gives a TTY session a PTY whose size follows resize messages', async () => {
    const s = await openCollected(await client.exec('m1-id', true));
    s.session.resize({ cols: 123, rows: 45 });
    s.session.write('stty size; echo MARK$((1+1))\n');
    await s.waitFor('MARK2');
    assert.match(s.stdout(), /45 123/);
    s.session.resize({ cols: 90, rows: 30 });
    s.session.write('stty size; exit 3\n');
    const st = await s.status;
    assert.match(s.stdout(), /30 90/, s.stdout());
    assert.deepEqual(st, { kind: 'exited', code: 3 });
    assert.match(s.stdout(), /30 90/, s.stdout());
  });

  it('answers a replayed token with 404', async () => {
    const url = await client.exec('m1-id', false);
    const first = await openCollected(url);
    first.session.closeStdin();
    await first.status;
    await assert.rejects(
      connectExec(url, { onOutput: () => undefined }),
      (err: unknown) => err instanceof ExecRefusedError && err.status === 404,
    );
  });

  it('answers an unknown token with 404', async () => {
    await assert.rejects(
      connectExec(`${broker.streamingBase}/exec/${'A'.repeat(43)}`, { onOutput: () => undefined }),
      (err: unknown) =>
        err instanceof ExecRefusedError && err.status === 404 && /token/.test(err.message),
    );
  });

  it('answers an expired token with 404', async () => {
    const url = await client.exec('m1-id', false);
    now += 60_000;
    await assert.rejects(
      connectExec(url, { onOutput: () => undefined }),
      (err: unknown) => err instanceof ExecRefusedError && err.status === 404,
    );
  });

  it('answers a token URL without a WebSocket upgrade with 400 and keeps the token', async () => {
    const url = await client.exec('m1-id', false);
    const status = await new Promise<number>((resolve, reject) => {
      http
        .get(url, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', reject);
    });
    assert.equal(status, 400);
    const s = await openCollected(url);
    s.session.closeStdin();
    assert.deepEqual(await s.status, { kind: 'exited', code: 0 });
  });

  it('answers malformed WebSocket handshakes with 400 (405 for POST) and keeps the token', async () => {
    const url = await client.exec('m1-id', false);
    const good = {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'sec-websocket-protocol': 'v5.channel.k8s.io',
    };
    const bad: [string, Record<string, string>, string?][] = [
      ['version 8', { 'sec-websocket-version': '8' }],
      ['another upgrade', { upgrade: 'h2c' }],
      ['a short key', { 'sec-websocket-key': 'c2hvcnQ=' }],
      ['no subprotocol', { 'sec-websocket-protocol': 'v4.channel.k8s.io' }],
      ['a subprotocol twice', { 'sec-websocket-protocol': 'v5.channel.k8s.io, v5.channel.k8s.io' }],
      ['an empty list item', { 'sec-websocket-protocol': 'v5.channel.k8s.io,,x' }],
      ['POST', {}, 'POST'],
    ];
    for (const [what, change, method] of bad) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request(url, { method: method ?? 'GET', headers: { ...good, ...change } });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('upgrade', () => {
          reject(new Error(`${what}: upgraded`));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, method === 'POST' ? 405 : 400, what);
    }
    const s = await openCollected(url);
    s.session.closeStdin();
    assert.deepEqual(await s.status, { kind: 'exited', code: 0 }, 'the token still works');
  });

  it('answers Exec with RESOURCE_EXHAUSTED once max_in_flight tokens are pending', async () => {
    now += 120_000; // expire whatever earlier tests left
    const urls: string[] = [];
    for (let i = 0; i < 50; i++) urls.push(await client.exec('m1-id', false));
    await assert.rejects(client.exec('m1-id', false), (err: grpc.ServiceError) => {
      return (
        err.code === grpc.status.RESOURCE_EXHAUSTED &&
        err.metadata.get('retry-after-ms').length === 1
      );
    });
    now += 60_000;
    await client.exec('m1-id', false);
  });

  it('ends the console process when the client closes the session', async () => {
    const marker = `sleep 98${process.pid % 1000}7`;
    const s = await openCollected(await client.exec('m1-id', true));
    s.session.write(`${marker}\n`);
    await eventually(async () => (await pidsWith(marker)).length > 0, 10_000, 'the sleep to start');
    s.session.close();
    await eventually(async () => (await pidsWith(marker)).length === 0, 10_000, 'the sleep to end');
  });

  it('ends a TTY sandbox whose slow client went away, unshare included', async () => {
    // the client stops reading, so the broker stops reading the PTY; then it leaves
    for (let i = 0; i < 3; i++) {
      const url = (await client.exec('yes-id', true)).replace(/^http:/, 'ws:');
      const ws = new WebSocket(url, ['v5.channel.k8s.io']);
      await new Promise((resolve, reject) => {
        ws.once('open', resolve).once('error', reject);
      });
      ws.pause();
      await sleep(300);
      ws.terminate();
    }
    await eventually(
      async () => (await pidsWith(yesMarker)).length === 0,
      10_000,
      'every process of the sessions (unshare included) to end',
    );
    await eventually(
      () => Promise.resolve(broker.sessionCount() === 0),
      5_000,
      'the sessions to close',
    );
  });

  it("gives a sandbox no fd above 2 of the broker's, such as an open TTY session's PTY master", async () => {
    const tty = await openCollected(await client.exec('m1-id', true));
    tty.session.write('echo READY\n');
    await tty.waitFor('READY');
    const s = await openCollected(await client.exec('m1-id', false));
    s.session.write('exec ls -l /proc/self/fd\n');
    s.session.closeStdin();
    assert.deepEqual(await s.status, { kind: 'exited', code: 0 });
    tty.session.close();
    // ls's own directory fd is the one allowed above 2
    const fds = s
      .stdout()
      .split('\n')
      .map((l) => /(\d+) -> (.*)$/.exec(l))
      .filter((m) => m !== null)
      .map((m) => `${m[1]} -> ${m[2]}`.replace(/\/proc\/\d+\//, '/proc/PID/'));
    assert.deepEqual(
      fds.filter((f) => !/^[012] -> /.test(f)),
      ['3 -> /proc/PID/fd'],
      s.stdout(),
    );
  });

  it('gives each sandbox, TTY or pipes, its own /tmp, /var/tmp and /dev/shm, hidden from the host', async () => {
    const files = ['/tmp', '/var/tmp', '/dev/shm'].map(
      (d) => `${d}/hp-broker-private-${process.pid}`,
    );
    const tty = await openCollected(await client.exec('m1-id', true));
    try {
      tty.session.write(
        `for f in ${files.join(' ')}; do echo planted > $f; done; ` +
          `echo wrote=$(cat ${files.join(' ')} | grep -c planted)\n`,
      );
      await tty.waitFor('wrote=3');
      for (const f of files) assert.equal(existsSync(f), false, `the host sees ${f}`);
      const s = await openCollected(await client.exec('m1-id', false));
      s.session.write(`cat ${files.join(' ')} 2>/dev/null | grep -c planted\n`);
      s.session.closeStdin();
      await s.status;
      assert.equal(s.stdout(), '0\n', 'the pipes sandbox sees what the TTY sandbox wrote');
    } finally {
      tty.session.close();
      for (const f of files) await rm(f, { force: true });
    }
  });

  for (const tty of [false, true]) {
    it(`stops reading a client whose ${tty ? 'TTY' : 'pipes'} console takes no input, and goes on once it does`, async () => {
      await rm(gate, { force: true });
      const s = await openCollected(await client.exec('gate-id', tty));
      await s.waitFor('READY');
      const memory = (): number =>
        process.memoryUsage().external + process.memoryUsage().arrayBuffers;
      gc();
      const before = memory();
      let grown = 0;
      const chunk = Buffer.alloc(256 << 10, 0x61);
      let sent = 0;
      let accepted = 0; // what the client got rid of while the console did not read
      let lastProgress = Date.now();
      let lastBuffered = 0;
      while (sent < INPUT_BYTES) {
        s.session.write(chunk);
        sent += chunk.length;
        while (s.session.bufferedAmount() > 4 << 20) {
          await sleep(10);
          const buffered = s.session.bufferedAmount();
          if (buffered < lastBuffered) lastProgress = Date.now();
          lastBuffered = buffered;
          if (accepted === 0 && Date.now() - lastProgress > 1_000) {
            // stalled: the broker pushes back; now let the console read
            accepted = sent - buffered;
            gc(); // what is left is what someone holds, not garbage
            grown = memory() - before;
            await writeFile(gate, '');
          }
        }
      }
      s.session.closeStdin();
      if (accepted === 0) await writeFile(gate, '');
      assert.deepEqual(await s.status, { kind: 'exited', code: 0 });
      assert.ok(
        accepted > 0 && accepted < 32 << 20,
        `the client got rid of ${accepted} of ${sent} bytes while the console read nothing`,
      );
      assert.ok(
        grown < 24 << 20,
        `memory grew by ${grown} bytes while ${accepted} bytes of input were unread`,
      );
      assert.match(s.stdout(), new RegExp(`^${INPUT_BYTES}\\r?$`, 'm'));
    });
  }
});

describe('machinebroker stopping', () => {
  it('waits for a session still starting when it stops, and leaves no process of it behind', async () => {
    const dir = await tempDir('broker-start');
    const marker = `start-marker-${process.pid}`;
    const deps = await sandboxDeps();
    // an unshare that takes a second to get going: the session's PTY sandbox is still starting
    // (its init not yet found) when the broker is told to stop
    const slowUnshare = path.join(dir, 'slow-unshare');
    await writeFile(
      slowUnshare,
      `#!/usr/bin/perl\nselect(undef, undef, undef, 1);\nexec { ${JSON.stringify(deps.unshare)} } ${JSON.stringify(deps.unshare)}, @ARGV;\n`,
    );
    await chmod(slowUnshare, 0o755);
    const broker = await startBroker(
      brokerConfig(
        dir,
        `[[machines]]\nid = "s"\nnamespace = "default"\nname = "s"\n` +
          `target = { type = "sandbox", command = ["/bin/sh", "-c", "exec sleep 1000", ${JSON.stringify(marker)}] }\n`,
      ),
      { log: silentLogger(), sandbox: { ...deps, unshare: slowUnshare } },
    );
    const client = createRuntimeClient(broker.socketPath);
    try {
      const session = connectExec(await client.exec('s', true), { onOutput: () => undefined });
      session.catch(() => undefined);
      await eventually(async () => (await pidsWith(marker)).length > 0, 10_000, 'the slow unshare');
      // what exists of the session the moment close() resolves
      const left = await broker.close(0).then(() => pidsWith(marker));
      assert.deepEqual(left, []);
      await assert.rejects(
        session,
        (err: unknown) => err instanceof ExecRefusedError && err.status === 503,
      );
    } finally {
      client.close();
      for (const pid of await pidsWith(marker)) process.kill(pid, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('ends open pipes sessions on SIGTERM with a status and leaves no process of theirs behind', async () => {
    await sandboxDeps(); // builds the checkout's nsinit the daemon uses
    const dir = await tempDir('broker-stop');
    const marker = `sleep 95${process.pid % 1000}1`;
    const config = path.join(dir, 'broker.toml');
    const socket = path.join(dir, 'broker.sock');
    await writeFile(
      config,
      `[runtime]\nsocket = ${JSON.stringify(socket)}\n` +
        `[[machines]]\nid = "s"\nnamespace = "default"\nname = "s"\ntarget = { type = "sandbox", command = ["/bin/sh", "-c", "exec ${marker}"] }\n`,
    );
    const runner = createRunner({ log: silentLogger(), allow: [process.execPath] });
    const daemon = runner.spawn(
      [
        process.execPath,
        '--import',
        'tsx',
        path.join(checkout, 'daemons/machinebroker/main.ts'),
      ].concat(['--config', config]),
      { cwd: checkout, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    daemon.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = daemon.exited;
    const client = createRuntimeClient(socket);
    try {
      await eventually(() => Promise.resolve(existsSync(socket)), 20_000, 'the broker socket');
      const s = await openCollected(await client.exec('s', false));
      await eventually(async () => (await pidsWith(marker)).length > 0, 10_000, 'the sleep');
      daemon.kill('SIGTERM');
      assert.deepEqual(await exited, { code: 0, signal: null }, stderr);
      assert.deepEqual(await pidsWith(marker), []);
      assert.deepEqual(await s.status, { kind: 'error', message: 'the runtime is stopping' });
    } finally {
      client.close();
      daemon.kill('SIGKILL'); // a no-op once it has exited (node knows its child is gone)
      for (const pid of await pidsWith(marker)) process.kill(pid, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
