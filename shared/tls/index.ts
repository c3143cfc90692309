// TLS for hostplane listeners and clients: TLS 1.3 only, mutual authentication against a CA,
// the peer's identity (CN, O) from its verified certificate, and certificates that reload from
// disk without a restart.
import { watch, type FSWatcher } from 'node:fs';
import { lstat, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import {
  createSecureContext,
  type ConnectionOptions,
  type TLSSocket,
  type TlsOptions,
} from 'node:tls';
import type { Logger } from '../log/index.ts';

/** The only protocol version hostplane speaks. */
export const TLS_VERSION = 'TLSv1.3';

type Pem = string | Buffer;

export interface ServerTlsOptions {
  /** CA bundle client certificates must chain to */
  ca?: Pem;
  cert: Pem;
  key: Pem;
  /** ask for and verify a client certificate; default true when `ca` is given */
  requestCert?: boolean;
}

/** Options for tls.createServer / https.createServer: TLS 1.3 only; mTLS when `ca` is given. */
export function serverContextOptions(opts: ServerTlsOptions): TlsOptions {
  const requestCert = opts.requestCert ?? opts.ca !== undefined;
  if (requestCert && opts.ca === undefined) {
    // without our CA, "verified" would mean "signed by any public CA": never what we want
    throw new Error('building TLS server options: requestCert needs the client CA (ca)');
  }
  return {
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    cert: opts.cert,
    key: opts.key,
    ...(opts.ca === undefined ? {} : { ca: opts.ca }),
    requestCert,
    rejectUnauthorized: requestCert,
  };
}

export interface ClientTlsOptions {
  /** CA bundle the server certificate must chain to; default Node's bundled roots */
  ca?: Pem;
  /** client certificate and key, for mTLS; both or neither */
  cert?: Pem;
  key?: Pem;
  /** SNI and the name checked against the server certificate */
  servername?: string;
}

/** Options for tls.connect / https.request: TLS 1.3 only, server certificate always verified. */
export function clientContextOptions(opts: ClientTlsOptions): ConnectionOptions {
  if ((opts.cert === undefined) !== (opts.key === undefined)) {
    throw new Error(
      'building TLS client options: a client certificate needs its key, and a key its certificate',
    );
  }
  return {
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    rejectUnauthorized: true,
    ...(opts.ca === undefined ? {} : { ca: opts.ca }),
    ...(opts.cert === undefined ? {} : { cert: opts.cert }),
    ...(opts.key === undefined ? {} : { key: opts.key }),
    ...(opts.servername === undefined ? {} : { servername: opts.servername }),
  };
}

/** Who is on the other end: subject CN and O values of the peer's certificate. */
export interface PeerIdentity {
  cn: string;
  o: string[];
}

/** The verified peer's identity, or null when the peer is unauthenticated or has no CN. */
export function peerIdentity(socket: TLSSocket): PeerIdentity | null {
  if (!socket.authorized) return null;
  const cert = socket.getPeerCertificate();
  // Node returns {} (typed as a certificate) when there is none
  const subj = (cert as Partial<typeof cert>).subject as
    Record<string, string | string[] | undefined> | undefined;
  if (subj === undefined) return null;
  const list = (v: string | string[] | undefined): string[] =>
    v === undefined ? [] : Array.isArray(v) ? v : [v];
  // several CNs are unusual; the most specific (last) one is what OpenSSL prints last
  const cn = list(subj['CN']).at(-1);
  if (cn === undefined || cn === '') return null;
  return { cn, o: list(subj['O']) };
}

/** Paths of the PEM files a TLS endpoint uses. */
export interface CertificateFiles {
  ca?: string;
  cert: string;
  key: string;
}

/** What was read from CertificateFiles, as Buffers. */
export interface CertificateMaterial {
  ca?: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** The current certificate material, re-read on file changes and on `reload()`. */
export interface CertificateSource {
  current(): CertificateMaterial;
  /** re-reads now (SIGHUP); resolves true when new material was taken, false when kept */
  reload(): Promise<boolean>;
  close(): void;
}

export interface WatchOptions {
  files: CertificateFiles;
  /** called with new, valid material (e.g. `server.setSecureContext(serverContextOptions(m))`) */
  onChange(material: CertificateMaterial): void;
  log: Logger;
  /** wait this long after the last file event before reading (writers touch several files); default 100 ms */
  debounceMs?: number;
  /** whether to watch the directories at all (off: reload() only); default true */
  watch?: boolean;
  /**
   * also re-read this often, for changes fs.watch misses (network file systems); 0 turns it off;
   * default 60 s when watching, else 0
   */
  pollMs?: number;
}

/** Reads the files and checks they make a usable context (the key matches the certificate). */
export async function readCertificates(files: CertificateFiles): Promise<CertificateMaterial> {
  const read = async (what: string, file: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new Error(`reading ${what} ${file}: ${why}`, { cause: err });
    }
  };
  const [cert, key, ca] = await Promise.all([
    read('certificate', files.cert),
    read('key', files.key),
    files.ca === undefined ? undefined : read('CA', files.ca),
  ]);
  const material: CertificateMaterial = { cert, key, ...(ca === undefined ? {} : { ca }) };
  try {
    createSecureContext(material);
  } catch (err) {
    throw new Error(
      `loading certificate ${files.cert} with key ${files.key}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return material;
}

function sameMaterial(a: CertificateMaterial, b: CertificateMaterial): boolean {
  const eq = (x: Buffer | undefined, y: Buffer | undefined): boolean =>
    x === undefined || y === undefined ? x === y : x.equals(y);
  return eq(a.cert, b.cert) && eq(a.key, b.key) && eq(a.ca, b.ca);
}

/**
 * Reads the files (rejecting if that fails: a daemon must not start without its certificate),
 * then watches their directories (and those their symlinks lead through) and re-reads them every
 * `pollMs` as well. A later read that fails, or a key that doesn't match its
 * certificate (say, the key was written before the certificate), is logged and the old material
 * stays; onChange sees only new, valid material.
 */
export async function watchCertificates(opts: WatchOptions): Promise<CertificateSource> {
  const log = opts.log.child({ component: 'tls' });
  const debounceMs = opts.debounceMs ?? 100;
  let material = await readCertificates(opts.files);
  let chain: Promise<boolean> = Promise.resolve(false);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const watching = opts.watch ?? true;

  // a directory (real path) -> its watcher; re-resolved before each read, as symlinks move
  const watchers = new Map<string, FSWatcher>();
  const onEvent = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void reload();
    }, debounceMs);
    timer.unref();
  };
  const watchDir = (dir: string): void => {
    // close() may have come while the directories were resolved
    if (closed) return;
    try {
      const w = watch(dir, { persistent: false }, onEvent);
      w.on('error', (err) => {
        log.warn(
          { dir, reason: err.message },
          'watching certificate directory failed; reload() still works',
        );
      });
      watchers.set(dir, w);
    } catch (err) {
      log.warn(
        { dir, reason: (err as Error).message },
        'cannot watch certificate directory; reload() still works',
      );
    }
  };
  const files = [opts.files.cert, opts.files.key, opts.files.ca].filter(
    (f): f is string => f !== undefined,
  );
  // the files' directories, and those of every symlink on the way to them (certbot's live/ and
  // archive/, a secret volume's ..data): a swap anywhere there is a change
  const rewatch = async (): Promise<void> => {
    if (closed) return;
    const dirs = new Set((await Promise.all(files.map(resolutionDirs))).flat());
    for (const [dir, w] of watchers) {
      if (!dirs.has(dir)) {
        w.close();
        watchers.delete(dir);
      }
    }
    for (const dir of dirs) if (!watchers.has(dir)) watchDir(dir);
  };
  const reload = (): Promise<boolean> => {
    chain = chain.then(async () => {
      if (closed) return false;
      if (watching) await rewatch();
      try {
        const next = await readCertificates(opts.files);
        if (sameMaterial(next, material)) return false;
        material = next;
        log.info({ cert: opts.files.cert }, 'certificates reloaded');
        opts.onChange(next);
        return true;
      } catch (err) {
        log.error(
          { cert: opts.files.cert, reason: (err as Error).message },
          'certificate reload failed, keeping the previous certificate',
        );
        return false;
      }
    });
    return chain;
  };

  if (watching) await rewatch();
  const pollMs = opts.pollMs ?? (watching ? 60_000 : 0);
  let poll: NodeJS.Timeout | undefined;
  if (pollMs > 0) {
    poll = setInterval(() => void reload(), pollMs);
    poll.unref();
  }

  return {
    current: () => material,
    reload,
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      if (poll !== undefined) clearInterval(poll);
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}

/** Symlinks followed before giving up, as the kernel's ELOOP limit. */
const MAX_SYMLINKS = 40;

/**
 * The real directories whose entries decide what `file` resolves to: the one holding each symlink
 * met on the way (in any path component) and the one holding the file. Resolution stops at the
 * first missing component, whose directory is still watched for it to appear.
 */
export async function resolutionDirs(file: string): Promise<string[]> {
  const dirs = new Set<string>();
  let rest = path.resolve(file).split(path.sep).filter(Boolean);
  // always a real path: every symlink before it was expanded
  let cur = path.parse(path.resolve(file)).root;
  let hops = 0;
  while (rest.length > 0) {
    const name = rest.shift()!;
    const next = path.join(cur, name);
    let isLink: boolean;
    try {
      isLink = (await lstat(next)).isSymbolicLink();
    } catch {
      dirs.add(cur);
      break;
    }
    if (!isLink) {
      if (rest.length === 0) dirs.add(cur);
      cur = next;
      continue;
    }
    dirs.add(cur);
    if (++hops > MAX_SYMLINKS) break;
    let target: string;
    try {
      target = await readlink(next);
    } catch {
      break;
    }
    if (path.isAbsolute(target)) cur = path.parse(target).root;
    rest = [...target.split(path.sep).filter(Boolean), ...rest];
  }
  return [...dirs];
}
