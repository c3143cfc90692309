// gRPC glue over shared/tls for cu-thor-server: mTLS server credentials (TLS 1.3 only, client
// certificate required and verified against [tls] ca_file) that follow the certificate files.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../shared/log/index.ts';
import {
  readCertificates,
  serverContextOptions,
  watchCertificates,
  type CertificateFiles,
  type CertificateMaterial,
  type CertificateSource,
} from '../../shared/tls/index.ts';

/** The `[tls]` files. */
export interface TlsFiles {
  ca_file: string;
  cert_file: string;
  key_file: string;
}

/** The `[tls]` section as shared/tls names the files. */
export function certificateFiles(tls: TlsFiles): CertificateFiles {
  return { ca: tls.ca_file, cert: tls.cert_file, key: tls.key_file };
}

/** PEM certificate, key and the CA that client certificates must chain to. */
export interface ServerMaterial {
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
}

function requireCa(m: CertificateMaterial): ServerMaterial {
  // certificateFiles() always names a CA file, so readCertificates always returns one
  if (m.ca === undefined) throw new Error('loading [tls] certificates: no client CA');
  return { ca: m.ca, cert: m.cert, key: m.key };
}

function sameMaterial(a: CertificateMaterial, b: CertificateMaterial): boolean {
  const eq = (x: Buffer | undefined, y: Buffer | undefined): boolean =>
    x === undefined || y === undefined ? x === y : x.equals(y);
  return eq(a.cert, b.cert) && eq(a.key, b.key) && eq(a.ca, b.ca);
}

/**
 * gRPC server credentials built from shared/tls's server options, whose certificate and CA can be
 * replaced on a running server (new handshakes use the new ones).
 */
export class ReloadableServerCredentials extends grpc.ServerCredentials {
  constructor(material: ServerMaterial) {
    // a CA is required: without it there is no client certificate to verify
    const options = serverContextOptions({ ...material, requestCert: true });
    // grpc-js passes the first argument to http2.createSecureServer and the second to
    // setSecureContext on updates; both carry the TLS 1.3-only versions.
    super({ requestCert: true, rejectUnauthorized: true }, options);
  }
  /** New certificate/key/CA for the handshakes from now on. */
  update(material: ServerMaterial): void {
    this.updateSecureContextOptions(serverContextOptions({ ...material, requestCert: true }));
  }
  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** Server credentials that follow the `[tls]` files. */
export interface ServerTls {
  readonly credentials: ReloadableServerCredentials;
  /**
   * Re-reads the files `next` names (SIGHUP; they may be other paths than before) and uses them
   * for new handshakes. Rejects, keeping the old ones, when they are unreadable or the key does
   * not match the certificate. Resolves whether the material changed.
   */
  reload(next: TlsFiles): Promise<boolean>;
  close(): void;
}

function samePaths(a: CertificateFiles, b: CertificateFiles): boolean {
  return a.ca === b.ca && a.cert === b.cert && a.key === b.key;
}

/**
 * Reads the `[tls]` files (rejecting when they are unusable: the daemon must not start without
 * them) and watches them: a replaced certificate is taken without SIGHUP (watchCertificates).
 */
export async function watchServerCredentials(
  tls: TlsFiles,
  log: Logger,
  opts: { debounceMs?: number } = {},
): Promise<ServerTls> {
  // set once the first material is read; file changes cannot be seen before that
  const state: { credentials?: ReloadableServerCredentials } = {};
  const watchFiles = (files: CertificateFiles): Promise<CertificateSource> =>
    watchCertificates({
      files,
      log,
      ...(opts.debounceMs === undefined ? {} : { debounceMs: opts.debounceMs }),
      onChange: (material) => {
        state.credentials?.update(requireCa(material));
      },
    });
  let files = certificateFiles(tls);
  let source: CertificateSource;
  try {
    source = await watchFiles(files);
  } catch (cause) {
    throw new Error(`loading [tls] certificates: ${(cause as Error).message}`, { cause });
  }
  const creds = new ReloadableServerCredentials(requireCa(source.current()));
  state.credentials = creds;

  return {
    credentials: creds,
    async reload(next) {
      const nextFiles = certificateFiles(next);
      try {
        // read here first: the watcher's reload() keeps old material quietly, SIGHUP must not
        await readCertificates(nextFiles);
      } catch (cause) {
        throw new Error(`reloading [tls] certificates: ${(cause as Error).message}`, { cause });
      }
      if (samePaths(files, nextFiles)) return source.reload();
      const before = source.current();
      const replacement = await watchFiles(nextFiles);
      source.close();
      source = replacement;
      files = nextFiles;
      creds.update(requireCa(source.current()));
      return !sameMaterial(before, source.current());
    },
    close() {
      source.close();
    },
  };
}
