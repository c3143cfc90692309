// Compiles nsinit.c into hostplane-nsinit through a Runner (gcc from its allowlist).
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ExecError, findBinary } from '../exec/index.ts';
import type { Runner } from '../exec/types.ts';

const checkout = path.resolve(import.meta.dirname, '../..');
/** The C source of the init. */
export const NSINIT_SOURCE = path.join(checkout, 'shared/ns/nsinit.c');
/** Where a checkout builds the init (`scripts/build-native.ts`). */
export const DEV_NSINIT = path.join(checkout, 'dist/native/hostplane-nsinit');

const FLAGS = ['-O2', '-Wall', '-Wextra', '-Werror', '-std=gnu11'];

export interface BuildOptions {
  /** output path; default DEV_NSINIT. */
  out?: string;
  /** absolute path of gcc; default the first found (it must be in the runner's allowlist). */
  gcc?: string;
  /** build even when the output is newer than the source. */
  force?: boolean;
}

/**
 * Builds the init unless `out` is newer than nsinit.c. Static when libc.a is there, else dynamic.
 * Resolves to whether it compiled. The output appears atomically (parallel test runs race here).
 */
export async function buildNsInit(runner: Runner, opts: BuildOptions = {}): Promise<boolean> {
  const out = opts.out ?? DEV_NSINIT;
  const src = await stat(NSINIT_SOURCE);
  if (opts.force !== true) {
    const have = await stat(out).catch(() => null);
    if (have !== null && have.mtimeMs >= src.mtimeMs) return false;
  }
  const gcc = opts.gcc ?? (await findBinary('gcc'));
  await mkdir(path.dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    try {
      await runner.run([gcc, ...FLAGS, '-static', '-o', tmp, NSINIT_SOURCE], {
        timeoutMs: 120_000,
      });
    } catch (err) {
      // no static libc on this machine: a dynamic binary works as well on the same host
      if (!(err instanceof ExecError) || err.notStarted || !/-lc\b|libc\.a/.test(err.stderr)) {
        throw err;
      }
      await runner.run([gcc, ...FLAGS, '-o', tmp, NSINIT_SOURCE], { timeoutMs: 120_000 });
    }
    await rename(tmp, out);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new Error(`building hostplane-nsinit into ${out}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return true;
}
