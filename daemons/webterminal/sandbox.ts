// The sandbox target: a shell under a PTY in new PID, mount and network namespaces (shared/ns),
// as an unprivileged user, in its own cgroup with the target's limits when cgroup v2 is usable
// (see cgroups.ts). Cleanup is cgroup.kill on that cgroup, then SIGKILL to the namespace's init:
// either ends every process of the session, whatever it forked or detached.
// The PTY, namespaces, user switch and kill are shared/pty's (machinebroker uses the same).
import { readFile } from 'node:fs/promises';
import type { Cgroup } from '../../shared/cgroup/index.ts';
import type { Logger } from '../../shared/log/index.ts';
import { sandboxPtyArgv, startSandboxPty, type SandboxPty } from '../../shared/pty/index.ts';
import type { ExitStatus, TermSize } from '../../shared/stream/index.ts';
import { effectiveLimits, type SessionCgroups } from './cgroups.ts';
import type { SessionLimits, TargetLimits } from './config.ts';

/** A running terminal behind a session, whatever the target. */
export interface TerminalConsole {
  /** registers the receiver of output; output before the first call is kept */
  onOutput(fn: (data: Buffer) => void): void;
  /** false when its input buffer is full: send no more until onceInputDrained */
  write(data: Buffer): boolean;
  /** calls `fn` once (asynchronously) when it has taken its buffered input, or ended */
  onceInputDrained(fn: () => void): void;
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
  /** a cgroup per session; absent: namespaces only, no resource limits */
  cgroups?: {
    sessions: SessionCgroups;
    /** [sandbox.limits] of the current config, read at every session start (reload) */
    defaults: () => SessionLimits;
  };
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

/** Starts a sandbox for session `id`; resolves once its namespace init runs (the session's "ready"). */
export async function startSandbox(
  deps: SandboxDeps,
  target: { command: readonly string[]; user: string; limits: TargetLimits },
  id: string,
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
  const cgroups = deps.cgroups;
  let cg: Cgroup | undefined;
  if (cgroups !== undefined) {
    const limits = effectiveLimits(cgroups.defaults(), target.limits);
    cg = await cgroups.sessions.create(id, limits);
    log.info({ cgroup: cg.rel, limits }, 'session cgroup created');
  }
  /** kills and removes the session's cgroup; logs instead of failing (cleanup must go on) */
  const release = async (): Promise<void> => {
    if (cg === undefined || cgroups === undefined) return;
    try {
      await cgroups.sessions.release(cg);
    } catch (err) {
      log.error({ cgroup: cg.rel, err: (err as Error).message }, 'removing the session cgroup');
    }
  };
  let pty: SandboxPty;
  try {
    pty = await startSandboxPty(deps, {
      command: target.command,
      size,
      ...(ids === undefined ? {} : { user: { uid: ids.uid, gid: ids.gid } }),
      ...(cg === undefined ? {} : { cgroupDir: cg.path }),
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: ids?.home ?? '/', LC_ALL: 'C.UTF-8' },
      log,
    });
  } catch (err) {
    await release();
    throw err;
  }
  // ended = the namespace is gone and so is the cgroup
  const done = pty.done.then(async (status) => {
    await release();
    return status;
  });
  return {
    onOutput: (fn) => {
      pty.onData(fn);
    },
    write: (data) => pty.write(data),
    onceInputDrained: (fn) => {
      pty.onceDrained(fn);
    },
    resize: (s) => {
      pty.resize(s);
    },
    pause: () => {
      pty.pause();
    },
    resume: () => {
      pty.resume();
    },
    done,
    async kill() {
      // the whole cgroup first (everything the session started, wherever it is), then the
      // namespace's init, which also covers an init not yet in its cgroup
      // (a session whose shell exited has released its cgroup already)
      if (cg !== undefined && (await cg.exists())) {
        await cg.kill().catch((err: unknown) => {
          log.warn({ cgroup: cg.rel, err: (err as Error).message }, 'cgroup.kill of the session');
        });
      }
      await pty.kill();
      await done;
    },
    pids: pty.pids,
  };
}
