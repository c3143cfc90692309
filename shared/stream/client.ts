// The client end of an exec session: a v5.channel.k8s.io WebSocket to a token URL or through
// exec-gateway. Used by the machine-exec CLI, the bench, tests, and the web terminal's backend.
import type { IncomingMessage } from 'node:http';
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
}

/** An open session. */
export interface ExecSession {
  write(data: Buffer | string): void;
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
  close(): void;
}

/** Opens an exec session at `url` (http(s) or ws(s)); rejects with ExecRefusedError on a non-101 answer. */
export function connectExec(url: string | URL, opts: ConnectOptions): Promise<ExecSession> {
  const u = new URL(url);
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
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let reason = 'Unknown';
        let message = body.trim() || `HTTP ${res.statusCode}`;
        try {
          const s = JSON.parse(body) as { reason?: unknown; message?: unknown };
          if (typeof s.reason === 'string') reason = s.reason;
          if (typeof s.message === 'string') message = s.message;
        } catch {
          // not a Status: keep the text
        }
        const retry = res.headers['retry-after'];
        reject(new ExecRefusedError(res.statusCode ?? 0, reason, message, retry));
        ws.terminate();
      });
    });
    ws.once('error', (err) => {
      reject(new Error(`connecting to exec ${u.origin}: ${err.message}`, { cause: err }));
    });
    ws.once('open', () => {
      if (ws.protocol !== V5_PROTOCOL) {
        ws.terminate();
        reject(
          new Error(
            `connecting to exec ${u.origin}: server chose subprotocol ${JSON.stringify(ws.protocol)}`,
          ),
        );
        return;
      }
      let gotStatus: ExitStatus | undefined;
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
            gotStatus = parseStatus(f.data);
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
      const send = (b: Buffer): void => {
        if (ws.readyState === WebSocket.OPEN) ws.send(b);
      };
      resolve({
        write: (d) => {
          send(encodeFrame(Channel.stdin, d));
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
        close: () => {
          ws.close(1000);
        },
      });
    });
  });
}
