// The shared daemon lifecycle end to end: the tiny fixture daemon as a real process, with a real
// NOTIFY_SOCKET bound by the test, real signals and a real HTTP listener.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRunner, type Runner, type Spawned } from '../../../../shared/exec/index.ts';
import { silentLogger } from '../../../../shared/log/index.ts';
import {
  bindNotifySocket,
  PYTHON,
  type NotifySocket,
} from '../../../fixtures/tiny-daemon/notify-socket.ts';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const MAIN = path.join(ROOT, 'test/fixtures/tiny-daemon/main.ts');

interface Daemon {
  proc: Spawned;
  out: () => string;
  err: () => string;
  /** resolves once stdout (the JSON log) matches */
  outMatches: (re: RegExp) => Promise<void>;
}

function startDaemon(runner: Runner, args: string[], env: Record<string, string> = {}): Daemon {
  const proc = runner.spawn([process.execPath, '--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const outMatches = (re: RegExp): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (re.test(out)) {
          proc.stdout?.off('data', check);
          resolve();
        }
      };
      proc.stdout?.on('data', check);
      void proc.exited.then(() => {
        reject(new Error(`daemon exited before its log matched ${re}: ${out}`));
      });
      check();
    });
  return { proc, out: () => out, err: () => err, outMatches };
}

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body });
        });
      })
      .on('error', reject);
  });
}

function portOf(status: string | undefined): number {
  const m = /listening on [^ ]+:(\d+)$/.exec(status ?? '');
  assert.ok(m, `STATUS= names the bound port: ${status}`);
  return Number(m[1]);
}

describe('tiny-daemon under a real NOTIFY_SOCKET', { timeout: 60_000 }, () => {
  let dir = '';
  let runner: Runner;
  let sock: NotifySocket;
  let n = 0;
  const open: NotifySocket[] = [];
  const newSocket = async (): Promise<NotifySocket> => {
    const s = await bindNotifySocket(runner, path.join(dir, `notify-${++n}.sock`));
    open.push(s);
    return s;
  };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hostplane-daemon-'));
    runner = createRunner({ log: silentLogger(), allow: [process.execPath, PYTHON] });
  });
  after(async () => {
    // a failed assertion must not leave a receiver keeping this test process alive
    await Promise.all(open.map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it('sends READY=1 only once the port answers, reloads on SIGHUP, drains and exits 0 on SIGTERM', async () => {
    sock = await newSocket();
    const config = path.join(dir, 'tiny.toml');
    await writeFile(config, 'listen = "127.0.0.1:0"\ngreeting = "hello"\ndelay_ms = 300\n');
    const d = startDaemon(runner, ['--config', config], { NOTIFY_SOCKET: sock.path });
    try {
      const ready = await sock.waitFor((m) => m.fields['READY'] === '1');
      assert.equal(ready.pid, d.proc.pid, 'READY=1 comes from the daemon itself');
      assert.equal(sock.messages[0], ready, 'nothing is sent before READY=1');
      // the port in STATUS= accepts right away: listen() had finished before READY=1
      const port = portOf(ready.fields['STATUS']);
      assert.deepEqual(await get(port), { status: 200, body: 'hello\n' });

      // SIGHUP with a new greeting: RELOADING=1 with a CLOCK_MONOTONIC stamp, then READY=1
      await writeFile(config, 'listen = "127.0.0.1:0"\ngreeting = "bonjour"\ndelay_ms = 300\n');
      const before = process.hrtime.bigint() / 1000n;
      const from = sock.messages.length;
      d.proc.kill('SIGHUP');
      const reloading = await sock.waitFor((m) => m.fields['RELOADING'] === '1', { from });
      const after = process.hrtime.bigint() / 1000n;
      const stamp = BigInt(reloading.fields['MONOTONIC_USEC'] ?? '-1');
      assert.ok(
        stamp >= before && stamp <= after,
        `MONOTONIC_USEC ${stamp} within [${before}, ${after}]`,
      );
      const reReady = await sock.waitFor((m) => m.fields['READY'] === '1', { from });
      assert.ok(sock.messages.indexOf(reReady) > sock.messages.indexOf(reloading));
      assert.deepEqual(await get(port), { status: 200, body: 'bonjour\n' });

      // a broken config on SIGHUP: logged with file and line, old greeting stays, READY=1 again
      await writeFile(config, 'greeting = "x"\nlisten = \n');
      const from2 = sock.messages.length;
      d.proc.kill('SIGHUP');
      await sock.waitFor((m) => m.fields['RELOADING'] === '1', { from: from2 });
      await sock.waitFor((m) => m.fields['READY'] === '1', { from: from2 });
      assert.deepEqual(await get(port), { status: 200, body: 'bonjour\n' });
      assert.match(
        d.out(),
        new RegExp(`reload failed.*${config.replace(/[.]/g, '\\.')}:2:\\d+: syntax error`),
      );

      // SIGTERM while a request is in flight: STOPPING=1, the request completes, exit 0
      const requests = (d.out().match(/"msg":"request"/g) ?? []).length;
      const inflight = get(port);
      await d.outMatches(new RegExp(`("msg":"request"[^]*){${requests + 1}}`));
      const from3 = sock.messages.length;
      d.proc.kill('SIGTERM');
      await sock.waitFor((m) => m.fields['STOPPING'] === '1', { from: from3 });
      assert.deepEqual(await inflight, { status: 200, body: 'bonjour\n' });
      const exit = await d.proc.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, d.err());
      assert.match(d.out(), /"msg":"drained"/);
    } finally {
      d.proc.kill('SIGKILL');
      await sock.close();
    }
  });

  it('exits 78 before READY with file:line:column on stderr when the config is broken', async () => {
    sock = await newSocket();
    const config = path.join(dir, 'broken.toml');
    await writeFile(config, 'greeting = "hi"\nlisten "127.0.0.1:0"\n');
    const d = startDaemon(runner, ['--config', config], { NOTIFY_SOCKET: sock.path });
    const exit = await d.proc.exited;
    assert.equal(exit.code, 78);
    assert.match(
      d.err(),
      new RegExp(`^${config.replace(/[.]/g, '\\.')}:2:8: syntax error: expected`),
    );
    assert.doesNotMatch(d.err(), /\n\s+at /, 'no stack trace for the operator');
    await sock.close();
    assert.deepEqual(sock.messages, [], 'no READY=1, nothing at all');
  });

  it('exits 78 naming every bad key when the config is valid TOML but wrong', async () => {
    const config = path.join(dir, 'invalid.toml');
    await writeFile(config, 'greting = "hi"\nlisten = "127.0.0.1"\n');
    const d = startDaemon(runner, ['--config', config]);
    const exit = await d.proc.exited;
    assert.equal(exit.code, 78);
    const lines = d.err().trimEnd().split('\n').sort();
    assert.equal(lines.length, 2, d.err());
    assert.match(lines[0] ?? '', new RegExp(`^${config}: listen: expected host:port`));
    assert.equal(lines[1], `${config}: unknown key "greting" at top level`);
  });

  it('fails with exit 1, one line and no READY when the port is taken', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      sock = await newSocket();
      const config = path.join(dir, 'taken.toml');
      await writeFile(config, `listen = "127.0.0.1:${port}"\n`);
      const d = startDaemon(runner, ['--config', config], { NOTIFY_SOCKET: sock.path });
      const exit = await d.proc.exited;
      assert.equal(exit.code, 1);
      assert.equal(
        d.err(),
        `tiny-daemon: listening on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}\n`,
      );
      await sock.close();
      assert.deepEqual(sock.messages, []);
    } finally {
      blocker.close();
    }
  });

  it('checks a config with --check-config without starting', async () => {
    const good = path.join(dir, 'good.toml');
    await writeFile(good, 'greeting = "hi"\n');
    const ok = startDaemon(runner, ['--config', good, '--check-config']);
    assert.equal((await ok.proc.exited).code, 0);
    assert.equal(ok.out(), `ok: ${good}\n`);
    const missing = startDaemon(runner, [
      '--config',
      path.join(dir, 'nope.toml'),
      '--check-config',
    ]);
    assert.equal((await missing.proc.exited).code, 78);
    assert.equal(missing.err(), `${path.join(dir, 'nope.toml')}: no such file\n`);
  });
});
