// machine-exec's work, with the terminal and streams passed in so that tests drive it.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { ExecRefusedError, connectExec, type ExecSession } from '../../shared/stream/client.ts';
import type { TermSize } from '../../shared/stream/index.ts';
import { parseCli, USAGE } from './args.ts';

/** Ctrl+]: leaves an interactive session (as telnet does). */
export const ESCAPE_BYTE = 0x1d;

/** What the CLI touches of the outside world. */
export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  /** the controlling terminal, when stdin and stdout are one */
  terminal?: {
    size(): TermSize;
    setRawMode(on: boolean): void;
    onResize(fn: () => void): () => void;
  };
}

/** Runs machine-exec; resolves to the exit status. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const inv = parseCli(argv, io.env);
  if (inv.kind === 'help') {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (inv.kind === 'usage-error') {
    io.stderr.write(`machine-exec: ${inv.message}\n${USAGE}\n`);
    return 2;
  }
  const tty = inv.tty ?? io.terminal !== undefined;
  let tls;
  try {
    tls = await readCredentials(inv.creds);
  } catch (err) {
    io.stderr.write(`machine-exec: ${(err as Error).message}\n`);
    return 1;
  }
  const url = new URL(
    `/apis/compute.ironcore.dev/namespaces/${inv.namespace}/machines/${inv.name}/exec?tty=${tty}`,
    inv.gateway,
  );
  let session: ExecSession;
  try {
    session = await connectExec(url, {
      tls,
      onOutput: (ch, data) => (ch === 1 ? io.stdout : io.stderr).write(data),
    });
  } catch (err) {
    const msg =
      err instanceof ExecRefusedError
        ? `exec into ${inv.namespace}/${inv.name} refused: ${err.status} ${err.reason}: ${err.message}` +
          (err.retryAfter === undefined ? '' : ` (retry after ${err.retryAfter}s)`)
        : (err as Error).message;
    io.stderr.write(`machine-exec: ${msg}\n`);
    return 1;
  }

  const term = tty ? io.terminal : undefined;
  const state = { detached: false };
  let offResize = (): void => undefined;
  if (term !== undefined) {
    term.setRawMode(true);
    session.resize(term.size());
    offResize = term.onResize(() => {
      session.resize(term.size());
    });
  }
  const onData = (chunk: Buffer): void => {
    if (term !== undefined) {
      const esc = chunk.indexOf(ESCAPE_BYTE);
      if (esc >= 0) {
        if (esc > 0) session.write(chunk.subarray(0, esc));
        state.detached = true;
        session.close();
        return;
      }
    }
    session.write(chunk);
  };
  const onEnd = (): void => {
    session.closeStdin();
  };
  io.stdin.on('data', onData);
  io.stdin.once('end', onEnd);
  try {
    const status = await session.status;
    if (state.detached) {
      io.stderr.write('\r\nmachine-exec: left the session (Ctrl+])\r\n');
      return 0;
    }
    if (status.kind === 'exited') return status.code;
    io.stderr.write(`machine-exec: ${status.message}\n`);
    return 1;
  } finally {
    io.stdin.off('data', onData);
    io.stdin.off('end', onEnd);
    io.stdin.pause();
    offResize();
    term?.setRawMode(false);
  }
}

/** Reads ca.crt, client.crt and client.key from `dir`. */
export async function readCredentials(
  dir: string,
): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  const read = async (name: string): Promise<Buffer> => {
    const file = path.join(dir, name);
    try {
      return await readFile(file);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new Error(`reading credentials ${file}: ${why}`, { cause: err });
    }
  };
  // one after the other, so that the first missing file is the one reported
  const ca = await read('ca.crt');
  const cert = await read('client.crt');
  const key = await read('client.key');
  return { ca, cert, key };
}
