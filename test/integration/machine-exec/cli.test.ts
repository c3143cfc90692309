import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import * as pty from 'node-pty';
import { createRunner } from '../../../shared/exec/index.ts';
import { silentLogger } from '../../../shared/log/index.ts';
import { runCli, ESCAPE_BYTE, type CliIo } from '../../../daemons/machine-exec/run.ts';
import { startChain, type Chain } from './fixture.ts';

const checkout = path.resolve(import.meta.dirname, '../../..');
const mainTs = path.join(checkout, 'daemons/machine-exec/main.ts');
const cliCommand = `${process.execPath} --import tsx ${mainTs}`;

function envOf(chain: Chain): Record<string, string> {
  return { MACHINE_EXEC_GATEWAY: chain.gatewayUrl, MACHINE_EXEC_CREDS: chain.credsDir };
}

/** `script` run by /bin/sh under a 100x40 PTY, with the chain's gateway and credentials. */
function inPty(chain: Chain, script: string) {
  const p = pty.spawn('/bin/sh', ['-c', script], {
    cols: 100,
    rows: 40,
    cwd: checkout,
    env: { ...process.env, ...envOf(chain) },
  });
  let out = '';
  p.onData((d) => {
    out += d;
  });
  const exited = new Promise<number>((r) =>
    p.onExit(({ exitCode }) => {
      r(exitCode);
    }),
  );
  return { p, out: () => out, exited };
}

function io(chain: Chain, terminal?: CliIo['terminal']) {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  return {
    io: {
      stdin,
      stdout,
      stderr,
      env: envOf(chain),
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
      output: true,
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

  it('ends quietly with 141 when stdout is a pipe whose reader left (`| head -1`)', async () => {
    const runner = createRunner({ log: silentLogger(), allow: [process.execPath] });
    const child = runner.spawn([process.execPath, '--import', 'tsx', mainTs, 'default/m1'], {
      cwd: checkout,
      env: envOf(chain),
    });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.stdin!.end('seq 1 2000000\n');
    let out = '';
    await new Promise<void>((resolve) => {
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) {
          child.stdout!.destroy();
          resolve();
        }
      });
    });
    const { code } = await child.exited;
    assert.equal(out.split('\n')[0], '1');
    assert.equal(err, '');
    assert.equal(code, 141);
  });

  it('with --tty, stdin a terminal and stdout a pipe: raw mode, the window size and Ctrl+] all work', async () => {
    const { p, out, exited } = inPty(chain, `${cliCommand} --tty default/m1 | cat; echo EXIT=$?`);
    try {
      // the remote shell's prompt: the session is up and the local terminal raw
      await until(() => /# $/.test(out()), 20_000);
      p.write('stty size; echo A$((2+3))\r');
      await until(() => /A5/.test(out()), 20_000);
      assert.match(out(), /40 100/);
      // the local terminal echoes nothing: the command line appears once, from the remote
      assert.equal(out().split('stty size; echo').length - 1, 1, JSON.stringify(out()));
      p.write('\x1d');
      await until(() => /EXIT=\d+/.test(out()));
      assert.match(out(), /left the session[\s\S]*EXIT=0/);
    } finally {
      p.kill();
      await exited;
    }
  });

  it('restores the terminal and exits 129 on SIGHUP', async () => {
    const { p, out, exited } = inPty(
      chain,
      `sh -c 'echo PID=$$; exec ${cliCommand} default/m1'; echo EXIT=$?; stty -a`,
    );
    try {
      await until(() => /PID=\d+/.test(out()));
      p.write('echo R$((1+1))\r');
      await until(() => /R2/.test(out()), 20_000);
      process.kill(Number(/PID=(\d+)/.exec(out())![1]), 'SIGHUP');
      await exited;
      const after = out().slice(out().indexOf('EXIT='));
      assert.match(after, /^EXIT=129/);
      assert.match(after, /(^|\s)icanon\b/);
      assert.match(after, /(^|\s)echo\b/);
    } finally {
      p.kill();
    }
  });

  it('gives the terminal back cooked while stopped from outside (SIGTSTP) and takes it raw on SIGCONT', async () => {
    const { p, out, exited } = inPty(
      chain,
      `sh -c 'echo TTY=$(tty) PID=$$; exec ${cliCommand} default/m1'; echo EXIT=$?`,
    );
    const runner = createRunner({ log: silentLogger(), allow: ['/bin/stty'] });
    const mode = async (): Promise<string> => {
      const tty = /TTY=(\S+)/.exec(out())![1]!;
      return (await runner.run(['/bin/stty', '-F', tty, '-a'])).stdout;
    };
    try {
      await until(() => /PID=\d+/.test(out()));
      p.write('echo R$((1+1))\r');
      await until(() => /R2/.test(out()), 20_000);
      const pid = Number(/PID=(\d+)/.exec(out())![1]);
      assert.match(await mode(), /(^|\s)-icanon\b/, 'raw during the session');
      process.kill(pid, 'SIGTSTP');
      await until(async () => /(^|\s)icanon\b/.test(await mode()));
      assert.match(await readFile(`/proc/${pid}/stat`, 'utf8'), /\) T /, 'stopped');
      process.kill(pid, 'SIGCONT');
      await until(async () => /(^|\s)-icanon\b/.test(await mode()));
      p.write('echo S$((2+2))\r');
      await until(() => /S4/.test(out()), 20_000);
      p.write('\x1d');
      await until(() => /EXIT=\d+/.test(out()));
      assert.match(out(), /EXIT=0/);
    } finally {
      p.kill();
      await exited;
    }
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

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
