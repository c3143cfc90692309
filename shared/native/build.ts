// Compiles the project's C sources (the nsinit program, the page-cache addon) through a Runner
// (gcc from its allowlist), skipping what is up to date; outputs appear atomically because
// parallel test runs race to build the same file.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ExecError, findBinary } from '../exec/index.ts';
import type { Runner } from '../exec/types.ts';

export const WARNING_FLAGS = ['-O2', '-Wall', '-Wextra', '-Werror', '-std=gnu11'];
/** where `nodejs` installs node_api.h */
export const NODE_INCLUDE_DIR = '/usr/include/node';

export interface NativeSource {
  /** what it is, for errors ("hostplane-nsinit") */
  name: string;
  /** absolute path of the .c file */
  source: string;
  /** 'program': static when libc.a is there, else dynamic; 'addon': a Node-API shared object */
  kind: 'program' | 'addon';
}

export interface BuildOptions {
  out: string;
  /** absolute path of gcc; default the first found (it must be in the runner's allowlist). */
  gcc?: string;
  /** build even when the output is newer than the source. */
  force?: boolean;
  /** flags before the kind's own (the packager's hardening flags); default WARNING_FLAGS */
  flags?: readonly string[];
}

/** The gcc arguments after the flags for one kind of output (a pure function). */
export function kindFlags(kind: NativeSource['kind'], staticLink: boolean): string[] {
  if (kind === 'addon') return ['-shared', '-fPIC', `-I${NODE_INCLUDE_DIR}`];
  return staticLink ? ['-static'] : [];
}

/** Builds `src` into `opts.out` unless that is newer; resolves to whether it compiled. */
export async function buildNative(
  runner: Runner,
  src: NativeSource,
  opts: BuildOptions,
): Promise<boolean> {
  const { out } = opts;
  const source = await stat(src.source);
  if (opts.force !== true) {
    const have = await stat(out).catch(() => null);
    if (have !== null && have.mtimeMs >= source.mtimeMs) return false;
  }
  const gcc = opts.gcc ?? (await findBinary('gcc'));
  const flags = opts.flags ?? WARNING_FLAGS;
  await mkdir(path.dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${randomBytes(4).toString('hex')}`;
  const compile = (staticLink: boolean) =>
    runner.run([gcc, ...flags, ...kindFlags(src.kind, staticLink), '-o', tmp, src.source], {
      timeoutMs: 120_000,
    });
  try {
    try {
      await compile(src.kind === 'program');
    } catch (err) {
      // no static libc on this machine: a dynamic binary works as well on the same host
      const noLibcA =
        err instanceof ExecError && !err.notStarted && /-lc\b|libc\.a/.test(err.stderr);
      if (src.kind !== 'program' || !noLibcA) throw err;
      await compile(false);
    }
    await rename(tmp, out);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new Error(`building ${src.name} into ${out}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return true;
}
