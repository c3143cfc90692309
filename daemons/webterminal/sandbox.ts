// The sandbox target: a shell under a PTY in new PID, mount and network namespaces (shared/ns),
// as an unprivileged user. Killing unshare ends the namespace's init (--kill-child) and with it
// every process of the session, whatever it forked or detached.
// (machinebroker has a similar PTY console; this one adds the user switch and an awaitable kill.
// The common part belongs in shared/ — see docs/webterminal.md.)
import { readFile } from 'node:fs/promises';
import * as pty from 'node-pty';
import type { Logger } from '../../shared/log/index.ts';
import { initPidOf, isolatedArgv } from '../../shared/ns/index.ts';
import type { ExitStatus, TermSize } from '../../shared/stream/index.ts';

/** A running terminal behind a session, whatever the target. */
export interface TerminalConsole {
  /** registers the receiver of output; output before the first call is kept */
  onOutput(fn: (data: Buffer) => void): void;
  write(data: Buffer): void;
  resize(size: TermSize): void;
  pause(): void;
  resume(): void;
  /** how it ended; never rejects */
  readonly done: Promise<ExitStatus>;
  /** ends it and every process it started; resolves once it has ended */
  kill(): Promise<void>;
  /** host PIDs worth knowing (unshare, the namespace init), for logs and tests */
  readonly pids: readonly number[];
}

export interface SandboxDeps {
  unshare: string;
  nsinit: string;
  setsid: string;
  setpriv: string;
  term: string;
  /** reads /etc/passwd; tests may pass their own */
  readPasswd?: () => Promise<string>;
}

/** uid, gid and home of `user` from passwd text; undefined when there is no such user. */
export function lookupUser(
  passwd: string,
  user: string,
): { uid: number; gid: number; home: string } | undefined {
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === user && f.length >= 7) {
      return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '/' };
    }
  }
  return undefined;
}

/** The argv of a sandbox running `command` as `ids` (a pure function). */
export function sandboxArgv(
  deps: Pick<SandboxDeps, 'unshare' | 'nsinit' | 'setsid' | 'setpriv'>,
  command: readonly string[],
  ids: { uid: number; gid: number } | undefined,
): string[] {
  // setsid --ctty: the shell's session and controlling terminal live inside the namespace,
  // so job control works; setpriv drops to the user after that (the PTY is already open).
  const inner = [deps.setsid, '--ctty', '--wait'];
  if (ids !== undefined) {
    inner.push(deps.setpriv, `--reuid=${ids.uid}`, `--regid=${ids.gid}`, '--clear-groups');
    inner.push('--inh-caps=-all', '--bounding-set=-all', '--no-new-privs');
  }
  const all = [...inner, ...command];
  return isolatedArgv({
    unshare: deps.unshare,
    init: deps.nsinit,
    pid: true,
    mount: true,
    net: true,
    command: all[0]!,
    args: all.slice(1),
  });
}

/** Starts a sandbox; resolves once its namespace init runs (the session's "ready"). */
export async function startSandbox(
  deps: SandboxDeps,
  target: { command: readonly string[]; user: string },
  size: TermSize,
  log: Logger,
): Promise<TerminalConsole> {
  let ids: { uid: number; gid: number; home: string } | undefined;
  if (target.user !== '') {
    const passwd = await (deps.readPasswd ?? (() => readFile('/etc/passwd', 'utf8')))();
    ids = lookupUser(passwd, target.user);
    if (ids === undefined) {
      throw new Error(`starting sandbox as ${target.user}: no such user in /etc/passwd`);
    }
  }
  const argv = sandboxArgv(deps, target.command, ids);
  // encoding null: Buffers out, so no UTF-8 sequence is split and re-encoded
  const p = pty.spawn(argv[0]!, argv.slice(1), {
    name: deps.term,
    cols: size.cols,
    rows: size.rows,
    cwd: '/',
    env: {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      HOME: ids?.home ?? '/',
      LC_ALL: 'C.UTF-8',
      TERM: deps.term,
    },
    encoding: null,
  });
  let sink: ((d: Buffer) => void) | undefined;
  const early: Buffer[] = [];
  p.onData((d: string | Buffer) => {
    const b = typeof d === 'string' ? Buffer.from(d) : d;
    if (sink === undefined) early.push(b);
    else sink(b);
  });
  let ended = false;
  const done = new Promise<ExitStatus>((resolve) => {
    p.onExit(({ exitCode, signal }) => {
      ended = true;
      log.info({ pid: p.pid, exitCode, signal }, 'sandbox ended');
      resolve({
        kind: 'exited',
        code: signal !== undefined && signal > 0 ? 128 + signal : exitCode,
      });
    });
  });
  const killNow = (): void => {
    if (ended) return;
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  let init: number;
  try {
    init = await initPidOf(p.pid);
  } catch (err) {
    killNow();
    await done;
    throw new Error(`starting sandbox ${argv.join(' ')}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  log.info({ argv, pid: p.pid, init }, 'sandbox started');
  return {
    onOutput(fn) {
      sink = fn;
      for (const b of early.splice(0)) fn(b);
    },
    write(data) {
      if (!ended) p.write(data);
    },
    resize(s) {
      if (!ended) p.resize(s.cols, s.rows);
    },
    pause: () => {
      p.pause();
    },
    resume: () => {
      p.resume();
    },
    done,
    async kill() {
      killNow();
      await done;
    },
    pids: [p.pid, init],
  };
}
