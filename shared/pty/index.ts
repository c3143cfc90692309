// A command under a PTY in new PID, mount and network namespaces (shared/ns) with a private /tmp,
// /var/tmp and /dev/shm, optionally as an unprivileged user: the one sandbox terminal of
// machinebroker and webterminal.
// node-pty forks by itself rather than through shared/exec's Runner: a PTY needs setsid and a
// controlling terminal, which the Runner cannot give; the argv is shared/ns's.
import * as pty from 'node-pty';
import type { Logger } from '../log/index.ts';
import { initPidOf, isolatedArgv, PRIVATE_TMP_BYTES } from '../ns/index.ts';
import type { ExitStatus, TermSize } from '../stream/index.ts';

export interface SandboxPtyDeps {
  /** absolute paths of util-linux unshare and setsid, and of hostplane-nsinit */
  unshare: string;
  nsinit: string;
  setsid: string;
  /** util-linux setpriv; needed only when a user is given */
  setpriv?: string;
  /** TERM of the terminal */
  term: string;
}

/** Numeric identity a sandbox drops to inside its namespaces. */
export interface SandboxUser {
  uid: number;
  gid: number;
}

export interface SandboxPtyOptions {
  command: readonly string[];
  size: TermSize;
  /** run as this user; default: as the daemon (root) */
  user?: SandboxUser;
  /** cgroup directory the namespace's init joins before the command starts (limits, kill) */
  cgroupDir?: string;
  /** the whole environment of the command (TERM is added) */
  env: Readonly<Record<string, string>>;
  log: Logger;
}

/** A running sandbox terminal. */
export interface SandboxPty {
  /** registers the receiver of output; output before the first call is kept */
  onData(fn: (data: Buffer) => void): void;
  /** false once the input not yet taken by the terminal reaches its high-water mark: stop
   * writing until onceDrained's callback */
  write(data: Buffer | string): boolean;
  /** calls `fn` once (asynchronously) when the pending input has fallen below the low-water
   * mark or the terminal has ended */
  onceDrained(fn: () => void): void;
  resize(size: TermSize): void;
  /** stop reading output (the reader is slow) until resume() */
  pause(): void;
  resume(): void;
  /** how it ended; never rejects */
  readonly done: Promise<ExitStatus>;
  /** ends the whole namespace (every process in it); resolves once unshare has exited */
  kill(): Promise<void>;
  /** host PIDs of unshare and of the namespace's init (unshare alone when the command ended
   * before its init was found) */
  readonly pids: readonly number[];
}

/**
 * The argv of a sandbox terminal running `command`, as `user` when given, inside `cgroupDir`
 * when given (a pure function).
 */
export function sandboxPtyArgv(
  deps: Pick<SandboxPtyDeps, 'unshare' | 'nsinit' | 'setsid' | 'setpriv'>,
  command: readonly string[],
  user?: SandboxUser,
  cgroupDir?: string,
): string[] {
  // setsid --ctty: the command's session and controlling terminal live inside the namespace,
  // otherwise a shell finds the PTY's foreground group outside its PID namespace (no job
  // control, and dash exits 2 on `exit N`); setpriv drops to the user after that, the PTY
  // being already open.
  const inner = [deps.setsid, '--ctty', '--wait'];
  if (user !== undefined) {
    if (deps.setpriv === undefined) {
      throw new Error(`building sandbox argv for uid ${user.uid}: no setpriv binary given`);
    }
    inner.push(deps.setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups');
    inner.push('--inh-caps=-all', '--bounding-set=-all', '--no-new-privs');
  }
  const all = [...inner, ...command];
  return isolatedArgv({
    unshare: deps.unshare,
    init: deps.nsinit,
    pid: true,
    mount: true,
    net: true,
    ...(cgroupDir === undefined ? {} : { cgroupDir }),
    // sessions of different users must not share scratch files, nor leave any behind
    privateTmpBytes: PRIVATE_TMP_BYTES,
    command: all[0]!,
    args: all.slice(1),
  });
}

/** Input the PTY has not taken yet above which write() says stop, and below which it drains. */
const INPUT_HIGH_WATER = 1 << 18;
const INPUT_LOW_WATER = 1 << 16;
/** How often pending input is looked at while a writer waits (node-pty has no drain event). */
const DRAIN_POLL_MS = 10;

/**
 * node-pty 1.1's unix write queue (CustomWriteStream, not in its typings): what it has not yet
 * written to the master. Its write() takes everything; this is how a caller sees the backlog.
 */
interface PtyWriteQueue {
  _writeStream?: { _writeQueue?: readonly { buffer: Buffer; offset: number }[] };
}

/** Bytes written to `p` the PTY has not taken yet (0 when node-pty's internals change). */
export function pendingInput(p: pty.IPty): number {
  const queue = (p as unknown as PtyWriteQueue)._writeStream?._writeQueue;
  if (queue === undefined) return 0;
  let n = 0;
  for (const t of queue) n += t.buffer.byteLength - t.offset;
  return n;
}

/** How long kill() lets unshare exit by itself after its init got SIGKILL. */
const KILL_BOUND_MS = 2_000;

/** Starts a sandbox terminal; resolves once the namespace's init runs. */
export async function startSandboxPty(
  deps: SandboxPtyDeps,
  opts: SandboxPtyOptions,
): Promise<SandboxPty> {
  const argv = sandboxPtyArgv(deps, opts.command, opts.user, opts.cgroupDir);
  // encoding null: node-pty hands out Buffers, so no UTF-8 sequence is split and re-encoded
  const p = pty.spawn(argv[0]!, argv.slice(1), {
    name: deps.term,
    cols: opts.size.cols,
    rows: opts.size.rows,
    cwd: '/',
    env: { ...opts.env, TERM: deps.term },
    encoding: null,
  });
  let sink: ((d: Buffer) => void) | undefined;
  const early: Buffer[] = [];
  // once killed, output is read and dropped: unshare writes to the PTY when its child dies, and
  // a master nobody reads leaves it blocked on a full output queue, never exiting
  let killed = false;
  p.onData((d: string | Buffer) => {
    if (killed) return;
    const b = typeof d === 'string' ? Buffer.from(d) : d;
    if (sink === undefined) early.push(b);
    else sink(b);
  });
  let ended = false;
  const done = new Promise<ExitStatus>((resolve) => {
    p.onExit(({ exitCode, signal }) => {
      ended = true;
      opts.log.info({ pid: p.pid, exitCode, signal }, 'sandbox ended');
      resolve({
        kind: 'exited',
        code: signal !== undefined && signal > 0 ? 128 + signal : exitCode,
      });
    });
  });
  /** SIGKILL (or `sig`, 0 to probe) to `pid`; false when there is no such process */
  const signal = (pid: number, sig: NodeJS.Signals | 0 = 'SIGKILL'): boolean => {
    try {
      process.kill(pid, sig);
      return true;
    } catch {
      return false;
    }
  };
  // null: the command ran and ended before its init could be looked up (a quick `sh -c`)
  let init: number | null;
  try {
    init = await Promise.race([initPidOf(p.pid), done.then(() => null)]);
  } catch (err) {
    if (!signal(p.pid, 0)) {
      // unshare is gone already (its /proc entry with it): the sandbox has run
      await done;
      init = null;
    } else {
      // unshare --kill-child: its child, the namespace's init, dies with it
      signal(p.pid);
      await done;
      throw new Error(`starting sandbox ${argv.join(' ')}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  opts.log.info({ argv, pid: p.pid, init, tty: true }, 'sandbox started');
  return {
    onData(fn) {
      sink = fn;
      for (const b of early.splice(0)) fn(b);
    },
    write(data) {
      if (ended) return true; // nobody to take it: dropped
      p.write(data); // node-pty writes Buffers as they are
      return pendingInput(p) < INPUT_HIGH_WATER;
    },
    onceDrained(fn) {
      const check = (): void => {
        if (ended || killed || pendingInput(p) < INPUT_LOW_WATER) fn();
        else setTimeout(check, DRAIN_POLL_MS);
      };
      setTimeout(check, 0);
    },
    resize(s) {
      if (!ended) p.resize(s.cols, s.rows);
    },
    pause: () => {
      if (!killed) p.pause();
    },
    resume: () => {
      p.resume();
    },
    done,
    async kill() {
      if (!killed) {
        killed = true;
        early.length = 0;
        p.resume();
      }
      if (ended) return;
      // SIGKILL to the namespace's init makes the kernel kill and reap everything in the
      // namespace before the init can be reaped; unshare, which waits for it, exits after that,
      // so `done` means the namespace is gone. (The init's PID cannot be reused while unshare
      // lives: it is unshare's child.) No init left: unshare itself.
      if (init === null || !signal(init)) signal(p.pid);
      // unshare can still block on its way out (a write to a terminal stopped with ^S): its
      // SIGKILL after a bound, which --kill-child passes on to an init still there
      const timer = setTimeout(() => {
        if (!ended) {
          opts.log.warn({ pid: p.pid, ms: KILL_BOUND_MS }, 'unshare outlived its init: SIGKILL');
          signal(p.pid);
        }
      }, KILL_BOUND_MS);
      await done;
      clearTimeout(timer);
    },
    pids: init === null ? [p.pid] : [p.pid, init],
  };
}
