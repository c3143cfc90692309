// mTLS server credentials of cu-thor-server: TLS 1.3 only, client certificate required,
// certificate files re-read on reload.
import { readFile } from 'node:fs/promises';
import type { SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';

/** The `[tls]` files. */
export interface TlsFiles {
  ca_file: string;
  cert_file: string;
  key_file: string;
}

/**
 * gRPC server credentials for mTLS with TLS 1.3 only and a client certificate required, whose
 * certificate and CA can be replaced on a running server (new handshakes use the new ones).
 */
export class ReloadableServerCredentials extends grpc.ServerCredentials {
  constructor(context: SecureContextOptions) {
    super(
      { requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
      { ...context, minVersion: 'TLSv1.3' },
    );
  }
  /** New certificate/key/CA for the handshakes from now on. */
  update(context: SecureContextOptions): void {
    this.updateSecureContextOptions({ ...context, minVersion: 'TLSv1.3' });
  }
  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** Reads the CA, certificate and key files named in `[tls]`. */
export async function readTlsFiles(tls: TlsFiles): Promise<SecureContextOptions> {
  const read = async (what: string, file: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (cause) {
      const why = (cause as NodeJS.ErrnoException).code ?? String(cause);
      throw new Error(`reading tls ${what} ${file}: ${why}`, { cause });
    }
  };
  const [ca, cert, key] = await Promise.all([
    read('ca_file', tls.ca_file),
    read('cert_file', tls.cert_file),
    read('key_file', tls.key_file),
  ]);
  return { ca, cert, key };
}
