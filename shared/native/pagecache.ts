// The page-cache addon (pagecache.c): flush a written file range and drop it from the page cache,
// off the main thread. Optional: without the addon (a checkout before `npm run build`), callers
// simply keep their pages cached.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Runner } from '../exec/types.ts';
import { buildNative, type NativeSource } from './build.ts';

const checkout = path.resolve(import.meta.dirname, '../..');
/** The C source of the addon. */
export const PAGECACHE_SOURCE = path.join(checkout, 'shared/native/pagecache.c');
/** Where a checkout builds it (`scripts/build-native.ts`). */
export const DEV_PAGECACHE = path.join(checkout, 'dist/native/pagecache.node');
/** Where the .deb installs it. */
export const INSTALLED_PAGECACHE = '/usr/lib/hostplane/pagecache.node';

export const PAGECACHE: NativeSource = {
  name: 'the page-cache addon',
  source: PAGECACHE_SOURCE,
  kind: 'addon',
};

/** The addon's path as loadPageCache would choose it (undefined: none exists). */
export function pageCachePath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env['HOSTPLANE_PAGECACHE'];
  if (fromEnv !== undefined && fromEnv !== '') return path.resolve(fromEnv);
  return [INSTALLED_PAGECACHE, DEV_PAGECACHE].find((f) => existsSync(f));
}

/** Builds the checkout's addon when it is missing or stale, unless another one is chosen
 * (tests and dev; `runner` must allow gcc). */
export async function ensurePageCache(runner: Runner): Promise<void> {
  const chosen = pageCachePath();
  if (chosen === undefined || chosen === DEV_PAGECACHE) {
    await buildNative(runner, PAGECACHE, { out: DEV_PAGECACHE });
  }
}

export interface PageCache {
  /** where the addon was loaded from */
  readonly path: string;
  /** writes out [offset, offset+length) of `fd`, waits for it, and drops it from the cache. */
  dropBehind(fd: number, offset: number, length: number): Promise<void>;
}

interface Addon {
  dropBehind(fd: number, offset: number, length: number, cb: (err: Error | null) => void): void;
}

/**
 * Loads the addon: `HOSTPLANE_PAGECACHE` when set (an error if it does not load), else the
 * installed one, else the checkout's build; null when none exists.
 */
export function loadPageCache(env: NodeJS.ProcessEnv = process.env): PageCache | null {
  const file = pageCachePath(env);
  if (file === undefined) return null;
  let addon: Addon;
  try {
    addon = createRequire(import.meta.url)(file) as Addon;
  } catch (cause) {
    throw new Error(`loading the page-cache addon ${file}: ${(cause as Error).message}`, {
      cause,
    });
  }
  const where = file;
  return {
    path: where,
    dropBehind: (fd, offset, length) =>
      new Promise<void>((resolve, reject) => {
        addon.dropBehind(fd, offset, length, (err) => {
          if (err === null) resolve();
          else reject(err);
        });
      }),
  };
}
