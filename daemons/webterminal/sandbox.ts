// The sandbox target: a shell under a PTY in new PID, mount and network namespaces (shared/ns),
// as an unprivileged user. Killing unshare ends the namespace's init (--kill-child) and with it
// every process of the session, whatever it forked or detached.
// The PTY, namespaces, user switch and kill are shared/pty's (machinebroker uses the same).
import { readFile } from 'node:fs/promises';
import type { Logger } from '../../shared/log/index.ts';
import { sandboxPtyArgv, startSandboxPty } from '../../shared/pty/index.ts';
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
  return sandboxPtyArgv(deps, command, ids);
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
  const p = await startSandboxPty(deps, {
    command: target.command,
    size,
    ...(ids === undefined ? {} : { user: { uid: ids.uid, gid: ids.gid } }),
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: ids?.home ?? '/', LC_ALL: 'C.UTF-8' },
    log,
  });
  return {
    onOutput: (fn) => {
      p.onData(fn);
    },
    write: (data) => {
      p.write(data);
    },
    resize: (s) => {
      p.resize(s);
    },
    pause: () => {
      p.pause();
    },
    resume: () => {
      p.resume();
    },
    done: p.done,
    kill: () => p.kill(),
    pids: p.pids,
  };
}
