// Namespaces for jobs and sandboxes: the `unshare` argv that starts a command under our tiny init
// (hostplane-nsinit, see nsinit.c) in new PID, mount and network namespaces, and where that init
// lives on the host.
import { existsSync } from 'node:fs';
import { readFile as fsReadFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Runner } from '../exec/types.ts';
import { buildNsInit, DEV_NSINIT } from './build.ts';

export { buildNsInit, DEV_NSINIT, NSINIT_SOURCE } from './build.ts';

/** Where the .deb installs the init. */
export const INSTALLED_NSINIT = '/usr/lib/hostplane/hostplane-nsinit';

/**
 * The init to use: `HOSTPLANE_NSINIT` when set, else the installed one when it exists, else the
 * checkout's `dist/native/hostplane-nsinit` (which may not be built yet: see ensureNsInit).
 */
export function nsInitPath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['HOSTPLANE_NSINIT'];
  if (fromEnv !== undefined && fromEnv !== '') return path.resolve(fromEnv);
  if (existsSync(INSTALLED_NSINIT)) return INSTALLED_NSINIT;
  return DEV_NSINIT;
}

/**
 * nsInitPath(), building the checkout's copy first when that is the one chosen and it is missing
 * or older than nsinit.c (tests and dev; `runner` must allow gcc). Resolves to the path.
 */
export async function ensureNsInit(runner: Runner): Promise<string> {
  const p = nsInitPath();
  if (p !== DEV_NSINIT) {
    if (!existsSync(p)) throw new Error(`finding hostplane-nsinit: ${p} does not exist`);
    return p;
  }
  await buildNsInit(runner);
  return p;
}

/**
 * Size bound of each private tmpfs (/tmp, /var/tmp, /dev/shm) of a sandbox or job: enough for
 * scratch files, small next to the session's memory.max, which its pages are charged to anyway.
 */
export const PRIVATE_TMP_BYTES = 64 * 1024 * 1024;

export interface IsolatedArgvOptions {
  /** absolute path of util-linux `unshare`. */
  unshare: string;
  /** absolute path of hostplane-nsinit. */
  init: string;
  /** new PID namespace: the init is its PID 1, the command PID 2. */
  pid: boolean;
  /** new mount namespace with private propagation (and a fresh /proc when `pid` too). */
  mount: boolean;
  /** new network namespace with only `lo`, brought up by the init. */
  net: boolean;
  /** cgroup directory the init joins before the command starts. */
  cgroupDir?: string;
  /**
   * a private tmpfs of at most this many bytes on each of /tmp, /var/tmp and /dev/shm, mounted by
   * the init (in a mount namespace of its own) before the command starts; needs `mount`.
   */
  privateTmpBytes?: number;
  /** fd (inherited by unshare and the init) where the init writes `exited N` and the like. */
  statusFd?: number;
  command: string;
  args: readonly string[];
}

/** The argv that runs `command args` isolated as asked (a pure function). */
export function isolatedArgv(o: IsolatedArgvOptions): string[] {
  const tmp = o.privateTmpBytes;
  if (tmp !== undefined && (!o.mount || !Number.isSafeInteger(tmp) || tmp <= 0)) {
    throw new Error(
      `building the argv of ${o.command}: a private tmp needs a mount namespace and a positive ` +
        `whole number of bytes, got mount=${o.mount} privateTmpBytes=${tmp}`,
    );
  }
  const argv = [o.unshare];
  // --fork: the PID namespace starts with unshare's child; --kill-child: if unshare dies, that
  // child (our init) gets SIGKILL, and the namespace dies with its init.
  if (o.pid) argv.push('--pid', '--fork', '--kill-child');
  if (o.mount) {
    argv.push('--mount', '--propagation', 'private');
    // /proc must be remounted to show the new PID namespace rather than the host's
    if (o.pid) argv.push('--mount-proc');
  }
  if (o.net) argv.push('--net');
  argv.push('--', o.init);
  if (o.cgroupDir !== undefined) argv.push('--cgroup', o.cgroupDir);
  if (o.net) argv.push('--lo');
  if (tmp !== undefined) argv.push('--private-tmp', String(tmp));
  if (o.statusFd !== undefined) argv.push('--status-fd', String(o.statusFd));
  argv.push('--', o.command, ...o.args);
  return argv;
}

export interface InitPidOptions {
  readFile?: (p: string) => Promise<string>;
  /** give up after this long; default 2 s. */
  timeoutMs?: number;
  /** pause between attempts; default 5 ms. */
  intervalMs?: number;
}

/**
 * The host PID of the namespace's init, i.e. the child `unshare --fork` (PID `unsharePid`)
 * started. The daemon signals the init, which forwards to the command.
 */
export async function initPidOf(unsharePid: number, opts: InitPidOptions = {}): Promise<number> {
  const readFile = opts.readFile ?? ((p: string) => fsReadFile(p, 'utf8'));
  const deadline = Date.now() + (opts.timeoutMs ?? 2_000);
  const file = `/proc/${unsharePid}/task/${unsharePid}/children`;
  for (;;) {
    let text: string;
    try {
      text = await readFile(file);
    } catch (err) {
      throw new Error(
        `finding the init of unshare ${unsharePid}: reading ${file}: ${errMsg(err)}`,
        {
          cause: err,
        },
      );
    }
    const first = text.trim().split(/\s+/, 1)[0] ?? '';
    // the fork happens right after unshare starts: an empty list just means "not yet"
    if (/^\d+$/.test(first)) return Number(first);
    if (Date.now() >= deadline) {
      throw new Error(
        `finding the init of unshare ${unsharePid}: no child after ${opts.timeoutMs ?? 2_000} ms`,
      );
    }
    await sleep(opts.intervalMs ?? 5);
  }
}

function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
