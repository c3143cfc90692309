import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createRunner } from '../../../shared/exec/index.ts';
import { silentLogger } from '../../../shared/log/index.ts';
import { runCli, ESCAPE_BYTE, type CliIo } from '../../../daemons/machine-exec/run.ts';
import { startChain, type Chain } from './fixture.ts';

const checkout = path.resolve(import.meta.dirname, '../../..');

function io(chain: Chain, terminal?: CliIo['terminal']) {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const env = { MACHINE_EXEC_GATEWAY: chain.gatewayUrl, MACHINE_EXEC_CREDS: chain.credsDir };
  return {
    io: {
      stdin,
      stdout,
      stderr,
      env,
      ...(terminal === undefined ? {} : { terminal }),
    } satisfies CliIo,
    stdin,
    out: () => out,
    err: () => err,
  };
}

describe('machine-exec CLI', () => {
  let chain: Chain;
  before(async () => {
    chain = await startChain([{ name: 'm1', target: '{ type = "sandbox" }' }]);
  });
  after(async () => {
    await chain.close();
  });

  it('runs piped stdin non-interactively and exits with the session status', async () => {
    const t = io(chain);
    const done = runCli(['default/m1'], t.io);
    t.stdin.end('echo hi; exit 5\n');
    assert.equal(await done, 5);
    assert.equal(t.out(), 'hi\n');
  });

  it('prints hi for `echo "echo hi" | machine-exec default/m1` as a real process', async () => {
    const runner = createRunner({ log: silentLogger(), allow: [process.execPath] });
    const res = await runner.run(
      [
        process.execPath,
        '--import',
        'tsx',
        path.join(checkout, 'daemons/machine-exec/main.ts'),
        'default/m1',
      ],
      {
        input: 'echo hi\n',
        cwd: checkout,
        env: { MACHINE_EXEC_GATEWAY: chain.gatewayUrl, MACHINE_EXEC_CREDS: chain.credsDir },
        timeoutMs: 20_000,
      },
    );
    assert.equal(res.stdout, 'hi\n');
    assert.equal(res.code, 0);
  });

  it('in a terminal: raw mode, the window size and its changes reach the PTY, Ctrl+] leaves', async () => {
    let size = { cols: 100, rows: 40 };
    const raw: boolean[] = [];
    let resized: (() => void) | undefined;
    const t = io(chain, {
      size: () => size,
      setRawMode: (on) => raw.push(on),
      onResize: (fn) => {
        resized = fn;
        return () => (resized = undefined);
      },
    });
    const done = runCli(['--gateway', chain.gatewayUrl, 'default/m1'], t.io);
    t.stdin.write('stty size; echo X$((3*3))\n');
    await until(() => t.out().includes('X9'));
    size = { cols: 60, rows: 20 };
    resized?.();
    t.stdin.write('stty size; echo Y$((3*4))\n');
    await until(() => t.out().includes('Y12'));
    t.stdin.write(Buffer.from([ESCAPE_BYTE]));
    assert.equal(await done, 0);
    assert.match(t.out(), /40 100[\s\S]*20 60/);
    assert.deepEqual(raw, [true, false]);
    assert.match(t.err(), /left the session/);
    assert.equal(resized, undefined);
  });

  it('explains a refusal and exits 1', async () => {
    const t = io(chain);
    t.stdin.end();
    assert.equal(await runCli(['default/nosuch'], t.io), 1);
    assert.match(t.err(), /refused: 404 NotFound: machine default\/nosuch not found/);
  });

  it('names the missing credentials file', async () => {
    const t = io(chain);
    assert.equal(await runCli(['--creds', '/nonexistent', 'default/m1'], t.io), 1);
    assert.match(t.err(), /reading credentials \/nonexistent\/ca\.crt: ENOENT/);
  });

  it('rejects malformed arguments with usage and exit 2', async () => {
    for (const argv of [
      [],
      ['m1'],
      ['a/b', 'c/d'],
      ['--bogus', 'a/b'],
      ['--gateway', 'http://x', 'a/b'],
    ]) {
      const t = io(chain);
      assert.equal(await runCli(argv, t.io), 2, argv.join(' '));
      assert.match(t.err(), /usage: machine-exec/);
    }
  });
});

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
