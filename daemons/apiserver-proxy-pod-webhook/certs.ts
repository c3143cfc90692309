// The webhook's serving certificate: read from cert_dir, handed to the TLS server, and read again
// when the files change (Kubernetes secret volumes swap a symlink) or on SIGHUP, without a restart.
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from '../../shared/log/index.ts';

export interface CertFiles {
  dir: string;
  cert: string;
  key: string;
  /** client CA bundle; when set, clients must present a certificate it signed */
  clientCa?: string | undefined;
}

/** TLS 1.3 only: the API server (Go) speaks it, and nothing older needs to reach us. */
export const MIN_TLS_VERSION = 'TLSv1.3';

/** Reads the files and checks that they make a usable context (the key matches the certificate). */
export async function readCertificates(files: CertFiles): Promise<SecureContextOptions> {
  const read = async (what: string, name: string): Promise<Buffer> => {
    const file = path.join(files.dir, name);
    try {
      return await readFile(file);
    } catch (cause) {
      const why = (cause as NodeJS.ErrnoException).code ?? String(cause);
      throw new Error(`reading ${what} ${file}: ${why}`, { cause });
    }
  };
  const [cert, key, ca] = await Promise.all([
    read('certificate', files.cert),
    read('key', files.key),
    files.clientCa === undefined ? undefined : read('client CA', files.clientCa),
  ]);
  const opts: SecureContextOptions = {
    cert,
    key,
    minVersion: MIN_TLS_VERSION,
    ...(ca ? { ca } : {}),
  };
  try {
    createSecureContext(opts);
  } catch (cause) {
    throw new Error(
      `loading certificate ${path.join(files.dir, files.cert)} with key ${files.key}: ${String(cause)}`,
      { cause },
    );
  }
  return opts;
}

/** How long after the last file event the files are read (writers touch several files). */
export const RELOAD_DEBOUNCE_MS = 100;

/**
 * Watches `files.dir` and calls `apply` with freshly read options after a change; a broken set
 * (say, a key written before its certificate) is logged and the previous certificate stays.
 * `reload()` forces a read (SIGHUP). `onResult` sees every attempt (tests await it).
 */
export function watchCertificates(
  files: CertFiles,
  apply: (opts: SecureContextOptions) => void,
  log: Logger,
  onResult?: (err: Error | null) => void,
): { reload(): Promise<void>; close(): void } {
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();
  const reload = (): Promise<void> => {
    chain = chain.then(async () => {
      try {
        apply(await readCertificates(files));
        log.info({ dir: files.dir }, 'certificates reloaded');
        onResult?.(null);
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        log.error(
          { err: e.message },
          'certificate reload failed; keeping the previous certificate',
        );
        onResult?.(e);
      }
    });
    return chain;
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(files.dir, () => {
      clearTimeout(timer);
      timer = setTimeout(() => void reload(), RELOAD_DEBOUNCE_MS);
    });
    watcher.on('error', (err) => {
      log.warn(
        { err: err.message, dir: files.dir },
        'watching certificates failed; SIGHUP still reloads',
      );
    });
  } catch (err) {
    log.warn(
      { err: String(err), dir: files.dir },
      'cannot watch certificates; SIGHUP still reloads',
    );
  }
  return {
    reload,
    close() {
      clearTimeout(timer);
      watcher?.close();
    },
  };
}
