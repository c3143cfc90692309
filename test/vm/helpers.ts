// Helpers for tests that run inside the test VM (scripts/vm/run-suite.ts): root, systemd as PID 1,
// the unified cgroup hierarchy with every controller. They refuse to act anywhere else, so a
// test/vm file started on a dev machine skips instead of touching the host's cgroups.
import { setTimeout as sleep } from 'node:timers/promises';
import { Cgroup, cgroup2Available } from '../../shared/cgroup/index.ts';
import { createRunner } from '../../shared/exec/index.ts';
import type { Runner, Spawned } from '../../shared/exec/types.ts';
import { silentLogger } from '../../shared/log/index.ts';

/** Binaries the VM tests run (absolute paths in Debian trixie, merged /usr). */
export const BIN = {
  sh: '/bin/sh',
  tail: '/usr/bin/tail',
  yes: '/usr/bin/yes',
  dd: '/usr/bin/dd',
  sleep: '/usr/bin/sleep',
  node: '/usr/bin/node',
  curl: '/usr/bin/curl',
  systemctl: '/usr/bin/systemctl',
  systemdRun: '/usr/bin/systemd-run',
  journalctl: '/usr/bin/journalctl',
} as const;

/** Why the VM tests cannot run here, or false when they can (for `describe(..., { skip })`). */
export async function vmSkipReason(): Promise<string | false> {
  if (process.env['HOSTPLANE_IN_VM'] !== '1') return 'not inside the test VM (npm run test:vm)';
  const cg = await cgroup2Available('/sys/fs/cgroup');
  if (!cg.ok) return `no usable cgroup v2: ${cg.reason ?? ''}`;
  return false;
}

export function vmRunner(): Runner {
  return createRunner({ log: silentLogger(), allow: Object.values(BIN) });
}

/**
 * A cgroup for one test under /sys/fs/cgroup/hostplane-test (the VM is ours), with every
 * controller enabled for its children.
 */
export async function testCgroup(name: string): Promise<Cgroup> {
  const root = Cgroup.at('/');
  const available = await root.controllers();
  const wanted = ['cpu', 'io', 'memory', 'pids'].filter((c) => available.includes(c));
  await root.enableControllers(wanted);
  const top = root.child('hostplane-test');
  await top.create();
  await top.enableControllers(wanted);
  const cg = top.child(name);
  await cg.remove({ timeoutMs: 5000 }).catch(() => undefined);
  await cg.create();
  return cg;
}

/**
 * Starts argv inside `cg` before it runs anything: a shell waits on stdin until it has been
 * moved, then execs argv, so every descendant is born in the cgroup.
 */
export async function spawnIn(
  runner: Runner,
  cg: Cgroup,
  argv: readonly string[],
): Promise<Spawned> {
  const child = runner.spawn([BIN.sh, '-c', 'read -r _ && exec "$@"', 'gate', ...argv], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  await cg.moveProcess(child.pid);
  child.stdin?.end('go\n');
  return child;
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`waiting for ${what}: timed out after ${timeoutMs} ms`);
    await sleep(100);
  }
}
