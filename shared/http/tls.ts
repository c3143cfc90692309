// PEM files of a TLS endpoint, read with errors that name the file and the key it came from.
import { readFile } from 'node:fs/promises';

/** The `ca_file`, `cert_file`, `key_file` keys of a config table. */
export interface TlsFileNames {
  ca_file: string;
  cert_file: string;
  key_file: string;
}

/** The contents of the three files. */
export interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Reads the CA, certificate and key named in a config table. */
export async function readTlsFiles(names: TlsFileNames): Promise<TlsMaterial> {
  const read = async (what: string, file: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (cause) {
      const why = (cause as NodeJS.ErrnoException).code ?? String(cause);
      throw new Error(`reading tls ${what} ${file}: ${why}`, { cause });
    }
  };
  const [ca, cert, key] = await Promise.all([
    read('ca_file', names.ca_file),
    read('cert_file', names.cert_file),
    read('key_file', names.key_file),
  ]);
  return { ca, cert, key };
}
