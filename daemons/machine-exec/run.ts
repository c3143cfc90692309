// machine-exec's work, with the terminal and streams passed in so that tests drive it.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { ExecRefusedError, connectExec, type ExecSession } from '../../shared/stream/client.ts';
import type { ExitStatus, TermSize } from '../../shared/stream/index.ts';
import { execUrl, parseCli, USAGE } from './args.ts';

/** Ctrl+]: leaves an interactive session (as telnet does). */
export const ESCAPE_BYTE = 0x1d;
/** stdin is paused while more than this is queued on the socket, and resumed below the low mark. */
export const INPUT_HIGH_WATER = 1 << 20;
export const INPUT_LOW_WATER = 256 << 10;
/** The exit status when stdout or stderr is a closed pipe: 128 + SIGPIPE, as a shell tool killed by it. */
export const EXIT_BROKEN_PIPE = 141;

/** What the CLI touches of the outside world. */
export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  /** the terminal stdin reads from (raw mode, Ctrl+] and the window size belong to it) */
  terminal?: {
    /** whether stdout is a terminal too: then a terminal session is the default */
    output: boolean;
    size(): TermSize;
    setRawMode(on: boolean): void;
    onResize(fn: () => void): () => void;
  };
}

/** How a session ended, as far as the exit status is concerned. */
type Ending =
  | { kind: 'status'; status: ExitStatus }
  | { kind: 'detached' }
  | { kind: 'output-failed'; code: number }
  | { kind: 'signal'; name: string };

/**
 * Runs machine-exec; resolves to the exit status. Aborting `signal` with a signal name as the
 * reason (main.ts does so on SIGHUP and SIGQUIT) ends the session and resolves to 128 + its number.
 */
export async function runCli(
  argv: readonly string[],
  io: CliIo,
  signal?: AbortSignal,
): Promise<number> {
  const inv = parseCli(argv, io.env);
  if (inv.kind === 'help') {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (inv.kind === 'usage-error') {
    io.stderr.write(`machine-exec: ${inv.message}\n${USAGE}\n`);
    return 2;
  }
  const target = `${inv.namespace}/${inv.name}`;
  const tty = inv.tty ?? io.terminal?.output === true;
  let tls;
  try {
    tls = await readCredentials(inv.creds);
  } catch (err) {
    io.stderr.write(`machine-exec: ${(err as Error).message}\n`);
    return 1;
  }

  let finish: (e: Ending) => void = () => undefined;
  const ended = new Promise<Ending>((resolve) => (finish = resolve));
  let done = false;
  let session: ExecSession | undefined;

  // A closed pipe (`machine-exec … | head -1`) ends the session quietly, as SIGPIPE would end a
  // shell tool; the listeners stay for good, since a write queued before the end can still fail.
  const outputFailed = (which: string) => (err: NodeJS.ErrnoException) => {
    if (done) return;
    done = true;
    if (err.code === 'EPIPE') {
      finish({ kind: 'output-failed', code: EXIT_BROKEN_PIPE });
      return;
    }
    if (which === 'stdout') io.stderr.write(`machine-exec: writing stdout: ${err.message}\n`);
    finish({ kind: 'output-failed', code: 1 });
  };
  io.stdout.on('error', outputFailed('stdout'));
  io.stderr.on('error', outputFailed('stderr'));

  // Output backpressure: reading from the socket stops while stdout or stderr is full.
  const full = new Set<Writable>();
  const output = (stream: Writable, data: Buffer): void => {
    if (done || stream.write(data) || full.has(stream)) return;
    full.add(stream);
    session?.pause();
    stream.once('drain', () => {
      full.delete(stream);
      if (full.size === 0) session?.resume();
    });
  };

  try {
    session = await connectExec(execUrl(inv.gateway, inv.namespace, inv.name, tty), {
      tls,
      onOutput: (ch, data) => {
        output(ch === 1 ? io.stdout : io.stderr, data);
      },
    });
  } catch (err) {
    done = true;
    const msg =
      err instanceof ExecRefusedError
        ? `exec into ${target} refused: ${err.status} ${err.reason}: ${err.message}` +
          (err.retryAfter === undefined ? '' : ` (retry after ${err.retryAfter}s)`)
        : `exec into ${target} through exec-gateway ${inv.gateway.href}: ${connectionProblem(err)}`;
    io.stderr.write(`machine-exec: ${msg}\n`);
    return 1;
  }
  const s = session;
  void s.status.then((status) => {
    finish({ kind: 'status', status });
  });
  const onAbort = (): void => {
    const reason: unknown = signal?.reason;
    finish({ kind: 'signal', name: typeof reason === 'string' ? reason : 'SIGTERM' });
  };
  if (signal?.aborted === true) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });

  const term = tty ? io.terminal : undefined;
  let offResize = (): void => undefined;
  if (term !== undefined) {
    term.setRawMode(true);
    s.resize(term.size());
    offResize = term.onResize(() => {
      s.resize(term.size());
    });
  }
  // Input backpressure: stdin is paused while the socket has more than INPUT_HIGH_WATER queued.
  let inputWaiting = false;
  const send = (chunk: Buffer): void => {
    if (s.write(chunk, INPUT_HIGH_WATER) || inputWaiting) return;
    inputWaiting = true;
    io.stdin.pause();
    s.onDrain(INPUT_LOW_WATER, () => {
      inputWaiting = false;
      if (!done) io.stdin.resume();
    });
  };
  const onData = (chunk: Buffer): void => {
    if (done) return;
    if (term !== undefined) {
      const esc = chunk.indexOf(ESCAPE_BYTE);
      if (esc >= 0) {
        if (esc > 0) send(chunk.subarray(0, esc));
        finish({ kind: 'detached' });
        return;
      }
    }
    send(chunk);
  };
  const onEnd = (): void => {
    s.closeStdin();
  };
  io.stdin.on('data', onData);
  io.stdin.once('end', onEnd);
  let ending: Ending;
  try {
    ending = await ended;
  } finally {
    done = true;
    signal?.removeEventListener('abort', onAbort);
    io.stdin.off('data', onData);
    io.stdin.off('end', onEnd);
    io.stdin.pause();
    offResize();
    term?.setRawMode(false);
    // a session that has not ended on its own (Ctrl+], a signal, a closed pipe) is closed here;
    // a peer that stopped responding is cut off after a second rather than held for the handshake
    // (reading again first, so that the close answer is not stuck behind output nobody wants)
    if (s.paused) s.resume();
    s.close();
  }
  switch (ending.kind) {
    case 'detached':
      io.stderr.write('\r\nmachine-exec: left the session (Ctrl+])\r\n');
      return 0;
    case 'output-failed':
      return ending.code;
    case 'signal':
      io.stderr.write(`\r\nmachine-exec: ended the session on ${ending.name}\r\n`);
      return 128 + ((osConstants.signals as Record<string, number>)[ending.name] ?? 0);
    case 'status':
      break;
  }
  const { status } = ending;
  if (status.kind === 'error') {
    io.stderr.write(`machine-exec: ${status.message}\n`);
    return 1;
  }
  if (!Number.isInteger(status.code) || status.code < 0 || status.code > 255) {
    io.stderr.write(
      `machine-exec: exec into ${target}: the session reported exit code ${status.code}, which is not 0–255\n`,
    );
    return 1;
  }
  return status.code;
}

/** The reason a connection failed, without the client's own "connecting to exec wss://…" prefix. */
function connectionProblem(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.cause instanceof Error ? err.cause.message : err.message;
}

/**
 * Reads ca.crt, client.crt and client.key from `dir` and checks them (PEM that parses, a key that
 * belongs to the certificate), naming the file at fault.
 */
export async function readCredentials(
  dir: string,
): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  const fail = (file: string, why: string, cause?: unknown): Error =>
    new Error(`reading credentials ${file}: ${why}`, cause === undefined ? {} : { cause });
  const read = async (name: string): Promise<{ file: string; data: Buffer }> => {
    const file = path.join(dir, name);
    try {
      return { file, data: await readFile(file) };
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? String(err);
      throw fail(file, why, err);
    }
  };
  const certs = (file: string, data: Buffer): X509Certificate[] => {
    const pems = data.toString('utf8').match(PEM_CERTIFICATE) ?? [];
    if (pems.length === 0) throw fail(file, 'no PEM certificate in it');
    return pems.map((pem, i) => {
      try {
        return new X509Certificate(pem);
      } catch (err) {
        throw fail(file, `certificate ${i + 1} does not parse: ${(err as Error).message}`, err);
      }
    });
  };
  // one after the other, so that the first missing file is the one reported
  const ca = await read('ca.crt');
  const cert = await read('client.crt');
  const key = await read('client.key');
  certs(ca.file, ca.data);
  const leaf = certs(cert.file, cert.data)[0]!;
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(key.data);
  } catch (err) {
    throw fail(key.file, `not a usable private key: ${(err as Error).message}`, err);
  }
  if (!leaf.checkPrivateKey(keyObject)) {
    throw fail(key.file, `does not belong to the certificate in ${cert.file}`);
  }
  return { ca: ca.data, cert: cert.data, key: key.data };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
