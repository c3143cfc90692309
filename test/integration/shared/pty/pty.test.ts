// shared/pty against real unshare, setsid, setpriv and hostplane-nsinit (root needed).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { createRunner, findBinary } from '../../../../shared/exec/index.ts';
import { silentLogger } from '../../../../shared/log/index.ts';
import { ensureNsInit } from '../../../../shared/ns/index.ts';
import {
  startSandboxPty,
  type SandboxPty,
  type SandboxPtyDeps,
} from '../../../../shared/pty/index.ts';

const ENV = { PATH: '/usr/bin:/bin', HOME: '/', LC_ALL: 'C.UTF-8' };

/** PIDs of processes whose command line contains `marker`. */
async function pidsWith(marker: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (cmd.split('\0').join(' ').includes(marker)) out.push(Number(e));
  }
  return out;
}

/** Resolves with all output once it matches `re`. */
function output(p: SandboxPty, re: RegExp): Promise<string> {
  let text = '';
  return new Promise((resolve, reject) => {
    p.onData((d) => {
      text += d.toString();
      if (re.test(text)) resolve(text);
    });
    void p.done.then((s) => {
      reject(new Error(`sandbox ended (${JSON.stringify(s)}) before ${re}; output: ${text}`));
    });
  });
}

describe('sandbox pty', { timeout: 20_000 }, () => {
  let deps: SandboxPtyDeps;
  const started: SandboxPty[] = [];
  const start = async (
    command: string[],
    user?: { uid: number; gid: number },
  ): Promise<SandboxPty> => {
    const p = await startSandboxPty(deps, {
      command,
      size: { cols: 91, rows: 27 },
      env: ENV,
      log: silentLogger(),
      ...(user === undefined ? {} : { user }),
    });
    started.push(p);
    return p;
  };

  before(async () => {
    const [unshare, gcc, setsid, setpriv] = await Promise.all(
      ['unshare', 'gcc', 'setsid', 'setpriv'].map((b) => findBinary(b)),
    );
    const runner = createRunner({ log: silentLogger(), allow: [unshare!, gcc!] });
    deps = {
      unshare: unshare!,
      nsinit: await ensureNsInit(runner),
      setsid: setsid!,
      setpriv: setpriv!,
      term: 'xterm',
    };
  });

  after(async () => {
    await Promise.all(started.map((p) => p.kill()));
  });

  it('runs the command as PID 2 of its own namespace with only lo, on a terminal of the given size', async () => {
    const p = await start([
      '/bin/sh',
      '-c',
      'echo pid=$$; stty size; echo nets=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "); exit 5',
    ]);
    const text = await output(p, /nets=[^\r\n]*\r?\n/);
    assert.match(text, /pid=2\b/);
    assert.match(text, /27 91/);
    assert.match(text, /nets=lo\r?\n/);
    assert.deepEqual(await p.done, { kind: 'exited', code: 5 });
  });

  it('gives an interactive shell job control and takes resizes', async () => {
    const p = await start(['/bin/sh', '-i']);
    const seen = output(p, /S40x120/);
    p.resize({ cols: 120, rows: 40 });
    p.write('sleep 30 &\njobs; stty size | tr " " x | sed s/^/S/\n');
    // `jobs` lists the background sleep only when the shell has job control
    assert.match(await seen, /\[1\][^\n]*Running[^\n]*sleep 30[\s\S]*S40x120/);
    p.write('exit 3\n');
    assert.deepEqual(await p.done, { kind: 'exited', code: 3 });
  });

  it('drops to the given user inside the namespaces', async () => {
    const p = await start(['/bin/sh', '-c', 'echo "ids=$(id -u):$(id -g)"'], {
      uid: 65534,
      gid: 65534,
    });
    assert.match(await output(p, /ids=\d+:\d+/), /ids=65534:65534/);
    assert.deepEqual(await p.done, { kind: 'exited', code: 0 });
  });

  it('starts a command that ends at once, before its init could be looked up', async () => {
    // 30 at a time: under load unshare is often gone before /proc shows its child
    const all = await Promise.all(Array.from({ length: 30 }, () => start(['/bin/true'])));
    for (const p of all) {
      assert.deepEqual(await p.done, { kind: 'exited', code: 0 });
      await p.kill(); // nothing left to kill: resolves at once
      assert.ok(p.pids.length >= 1);
    }
  });

  it('kill ends every process of the namespace before it resolves', async () => {
    const n = process.pid * 1000 + (Date.now() % 1000);
    // the shell computes the name, so only the detached process carries it
    const marker = `sleep ${n + 1}`;
    const p = await start([
      '/bin/sh',
      '-c',
      `setsid sh -c 'exec sleep $((${n}+1))' & echo up; exec sleep 600`,
    ]);
    await output(p, /up/);
    let pids: number[] = [];
    for (let i = 0; i < 200 && pids.length === 0; i++) pids = await pidsWith(marker);
    assert.equal(pids.length, 1, 'the detached process runs');
    await p.kill();
    assert.deepEqual(await pidsWith(marker), []);
    assert.equal((await p.done).kind, 'exited');
  });
});
