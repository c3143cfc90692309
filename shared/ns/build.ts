// Builds nsinit.c into hostplane-nsinit (through shared/native's compiler driver).
import path from 'node:path';
import type { Runner } from '../exec/types.ts';
import { buildNative, type NativeSource } from '../native/build.ts';

const checkout = path.resolve(import.meta.dirname, '../..');
/** The C source of the init. */
export const NSINIT_SOURCE = path.join(checkout, 'shared/ns/nsinit.c');
/** Where a checkout builds the init (`scripts/build-native.ts`). */
export const DEV_NSINIT = path.join(checkout, 'dist/native/hostplane-nsinit');

export const NSINIT: NativeSource = {
  name: 'hostplane-nsinit',
  source: NSINIT_SOURCE,
  kind: 'program',
};

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
 * Resolves to whether it compiled.
 */
export function buildNsInit(runner: Runner, opts: BuildOptions = {}): Promise<boolean> {
  return buildNative(runner, NSINIT, { ...opts, out: opts.out ?? DEV_NSINIT });
}
