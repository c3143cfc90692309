// The client end of an exec session: a v5.channel.k8s.io WebSocket to a token URL or through
// exec-gateway. Used by the machine-exec CLI, the bench, tests, and the web terminal's backend.
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { ConnectionOptions } from 'node:tls';
import WebSocket from 'ws';
import {
  Channel,
  decodeFrame,
  encodeClose,
  encodeFrame,
  encodeResize,
  parseStatus,
  V5_PROTOCOL,
  type ExitStatus,
  type TermSize,
} from './v5.ts';

/** The server refused the session with an HTTP status (its JSON `reason` and `message`). */
export class ExecRefusedError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly retryAfter: string | undefined;
  constructor(status: number, reason: string, message: string, retryAfter?: string) {
    super(message);
    this.name = 'ExecRefusedError';
    this.status = status;
    this.reason = reason;
    this.retryAfter = retryAfter;
  }
}

export interface ConnectOptions {
  /** TLS client options for wss:/https: URLs (CA, client certificate and key) */
  tls?: ConnectionOptions;
  headers?: Record<string, string>;
  /** receives stdout (1) and stderr (2) */
  onOutput: (channel: 1 | 2, data: Buffer) => void;
  /** connect and handshake within this; default 15 s */
  timeoutMs?: number;
  /**
   * close() ends the socket outright when the peer has not finished the close handshake by then;
   * a peer that sent the status and does not close is closed after it too. Default 1 s.
   */
  closeGraceMs?: number;
}

/** At most this much of a refusal's body is read (a proxy's error page can be anything). */
export const REFUSAL_BODY_LIMIT = 64 << 10;
/** A refusal body that is not a Status is shown as one line of at most this many characters. */
const REFUSAL_EXCERPT_CHARS = 200;

/** An open session. */
export interface ExecSession {
  /** queues stdin bytes; false when bufferedAmount() is above `highWaterMark` (wait for onDrain) */
  write(data: Buffer | string, highWaterMark?: number): boolean;
  /** calls `fn` once bufferedAmount() is at most `lowWaterMark` (at once if it is already) */
  onDrain(lowWaterMark: number, fn: () => void): void;
  resize(size: TermSize): void;
  /** stdin EOF */
  closeStdin(): void;
  /** the exit status; an error status when the session ended without one */
  readonly status: Promise<ExitStatus>;
  /** unsent bytes queued on the socket (for backpressure) */
  bufferedAmount(): number;
  /**
   * Stops reading from the socket (a slow consumer): no more output arrives until resume(), and
   * TCP flow control pushes back to the sender. Frames already received may still be delivered.
   */
  pause(): void;
  resume(): void;
  /** whether reading is paused */
  readonly paused: boolean;
  /**
   * Ends the session: a close handshake, and the socket ended outright when the peer has not
   * answered within closeGraceMs (a peer that stopped reading would otherwise hold it for 30 s).
   */
  close(): void;
}

/** Opens an exec session at `url` (http(s) or ws(s)); rejects with ExecRefusedError on a non-101 answer. */
export function connectExec(url: string | URL, opts: ConnectOptions): Promise<ExecSession> {
  const given = new URL(url);
  const u = new URL(given);
  if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol === 'http:') u.protocol = 'ws:';
  const ws = new WebSocket(u, [V5_PROTOCOL], {
    ...opts.tls,
    ...(u.protocol === 'wss:' ? { minVersion: 'TLSv1.3' as const } : {}),
    headers: opts.headers ?? {},
    perMessageDeflate: false,
    handshakeTimeout: opts.timeoutMs ?? 15_000,
    maxPayload: 64 << 20,
  });
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        const code = res.statusCode ?? 0;
        const { reason, message } = describeRefusal(
          code,
          res.headers['content-type'],
          Buffer.concat(chunks).subarray(0, REFUSAL_BODY_LIMIT),
        );
        reject(new ExecRefusedError(code, reason, message, res.headers['retry-after']));
        ws.terminate();
      };
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        size += c.length;
        if (size >= REFUSAL_BODY_LIMIT) {
          res.destroy();
          finish();
        }
      });
      res.once('end', finish);
      res.once('close', finish);
      res.once('error', finish);
    });
    ws.once('error', (err) => {
      reject(new Error(`connecting to exec ${given.origin}: ${err.message}`, { cause: err }));
    });
    ws.once('open', () => {
      if (ws.protocol !== V5_PROTOCOL) {
        ws.terminate();
        reject(
          new Error(
            `connecting to exec ${given.origin}: server chose subprotocol ${JSON.stringify(ws.protocol)}`,
          ),
        );
        return;
      }
      let gotStatus: ExitStatus | undefined;
      let closeTimer: NodeJS.Timeout | undefined;
      let statusTimer: NodeJS.Timeout | undefined;
      const grace = opts.closeGraceMs ?? 1000;
      const close = (): void => {
        if (ws.readyState === WebSocket.CLOSED || closeTimer !== undefined) return;
        ws.close(1000);
        closeTimer = setTimeout(() => {
          ws.terminate();
        }, grace);
      };
      const status = new Promise<ExitStatus>((done) => {
        ws.on('message', (msg: Buffer) => {
          let f;
          try {
            f = decodeFrame(msg);
          } catch {
            return;
          }
          if (f.channel === Channel.stdout || f.channel === Channel.stderr) {
            opts.onOutput(f.channel, f.data);
          } else if (f.channel === Channel.status) {
            try {
              gotStatus = parseStatus(f.data);
            } catch (err) {
              gotStatus = {
                kind: 'error',
                message: `exec session sent an unreadable status: ${(err as Error).message}`,
              };
            }
            // the status is the last frame: a peer that does not close after it is closed
            statusTimer ??= setTimeout(close, grace);
          }
        });
        ws.on('error', () => undefined);
        ws.once('close', (code, reason) => {
          done(
            gotStatus ?? {
              kind: 'error',
              message: `exec session closed without a status (${code}${reason.length > 0 ? `: ${reason.toString()}` : ''})`,
            },
          );
        });
      });
      // onDrain waiters, checked whenever a send has been handed to the kernel
      const drainWaiters = new Set<{ low: number; fn: () => void }>();
      const checkDrain = (): void => {
        for (const w of drainWaiters) {
          if (ws.bufferedAmount <= w.low || ws.readyState !== WebSocket.OPEN) {
            drainWaiters.delete(w);
            w.fn();
          }
        }
      };
      ws.once('close', checkDrain);
      const send = (b: Buffer): void => {
        if (ws.readyState === WebSocket.OPEN) ws.send(b, checkDrain);
      };
      ws.once('close', () => {
        clearTimeout(closeTimer);
        clearTimeout(statusTimer);
      });
      resolve({
        write: (d, highWaterMark = Infinity) => {
          send(encodeFrame(Channel.stdin, d));
          return ws.bufferedAmount <= highWaterMark;
        },
        onDrain: (low, fn) => {
          drainWaiters.add({ low, fn });
          checkDrain();
        },
        resize: (s) => {
          send(encodeResize(s));
        },
        closeStdin: () => {
          send(encodeClose(Channel.stdin));
        },
        status,
        bufferedAmount: () => ws.bufferedAmount,
        pause: () => {
          ws.pause();
        },
        resume: () => {
          ws.resume();
        },
        get paused() {
          return ws.isPaused;
        },
        close,
      });
    });
  });
}

/** The reason and message of a refusal: its JSON Status, else the HTTP status text and one line of the body. */
function describeRefusal(
  code: number,
  contentType: string | undefined,
  body: Buffer,
): { reason: string; message: string } {
  const text = body.toString('utf8');
  const statusText = STATUS_CODES[code] ?? 'Unknown';
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null) {
      const s = v as { reason?: unknown; message?: unknown };
      const reason = typeof s.reason === 'string' ? s.reason : undefined;
      const message = typeof s.message === 'string' ? s.message : undefined;
      if (reason !== undefined || message !== undefined) {
        return { reason: reason ?? statusText, message: message ?? 'no message' };
      }
    }
  } catch {
    // not a Status: described below
  }
  const line = text.replace(/\s+/g, ' ').trim();
  if (line === '') return { reason: statusText, message: 'no body' };
  const excerpt =
    line.length > REFUSAL_EXCERPT_CHARS ? `${line.slice(0, REFUSAL_EXCERPT_CHARS)}…` : line;
  return {
    reason: statusText,
    message: `non-Status body (${contentType ?? 'no content-type'}): ${excerpt}`,
  };
}
