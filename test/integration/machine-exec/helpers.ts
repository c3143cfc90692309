// Shared setup of the machine-exec integration tests: real sandboxes, a broker on a temp socket,
// and a session client that collects output.
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRunner, findBinary } from '../../../shared/exec/index.ts';
import { silentLogger } from '../../../shared/log/index.ts';
import { ensureNsInit } from '../../../shared/ns/index.ts';
import { parseConfig } from '../../../shared/config/index.ts';
import { connectExec, type ExecSession } from '../../../shared/stream/client.ts';
import type { ExitStatus } from '../../../shared/stream/index.ts';
import type { ConnectionOptions } from 'node:tls';
import type { SandboxDeps } from '../../../daemons/machinebroker/console.ts';
import { configSchema, type BrokerConfig } from '../../../daemons/machinebroker/config.ts';

export async function sandboxDeps(): Promise<SandboxDeps> {
  const [unshare, gcc, setsid] = await Promise.all(
    ['unshare', 'gcc', 'setsid'].map((b) => findBinary(b)),
  );
  const runner = createRunner({ log: silentLogger(), allow: [unshare!, gcc!] });
  const nsinit = await ensureNsInit(runner);
  return { runner, unshare: unshare!, nsinit, setsid: setsid!, term: 'xterm' };
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `hostplane-${prefix}-`));
}

/** A broker config from TOML text, with the runtime socket in `dir`. */
export function brokerConfig(dir: string, toml: string): BrokerConfig {
  return parseConfig(
    `[runtime]\nsocket = ${JSON.stringify(path.join(dir, 'broker.sock'))}\n${toml}`,
    'test.toml',
    configSchema,
  );
}

/** A session whose output is collected. */
export interface Collected {
  session: ExecSession;
  stdout: () => string;
  stderr: () => string;
  /** resolves once stdout contains `text` (rejects after `ms`) */
  waitFor: (text: string | RegExp, ms?: number) => Promise<void>;
  status: Promise<ExitStatus>;
}

export async function openCollected(
  url: string,
  opts: { tls?: ConnectionOptions; headers?: Record<string, string> } = {},
): Promise<Collected> {
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const session = await connectExec(url, {
    ...opts,
    onOutput: (ch, d) => {
      if (ch === 1) out += d.toString();
      else err += d.toString();
      for (const w of waiters) w();
    },
  });
  const waitFor = (text: string | RegExp, ms = 10_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const test = (): boolean => (typeof text === 'string' ? out.includes(text) : text.test(out));
      if (test()) {
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(
          new Error(
            `waiting for ${String(text)} in output; got ${JSON.stringify(out.slice(-500))}`,
          ),
        );
      }, ms);
      const check = (): void => {
        if (test()) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        }
      };
      waiters.add(check);
    });
  return { session, stdout: () => out, stderr: () => err, waitFor, status: session.status };
}

/** PIDs of processes whose command line contains `marker`. */
export async function pidsWith(marker: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (cmd.split('\0').join(' ').includes(marker)) out.push(Number(e));
  }
  return out;
}

/** Polls `cond` until true (for state outside our process, like /proc, which has no event). */
export async function eventually(
  cond: () => Promise<boolean>,
  ms = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
