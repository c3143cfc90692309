// HTTP errors of the exec daemons, answered as a Kubernetes-style metav1.Status in JSON so that a
// kubectl-like client (and a human with curl) reads the reason; the status code means what it says.
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** Stable reasons, one per status we answer with. */
export const Reason = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  Conflict: 409,
  PayloadTooLarge: 413,
  UnsupportedMediaType: 415,
  TooManyRequests: 429,
  InternalError: 500,
  BadGateway: 502,
  ServiceUnavailable: 503,
  GatewayTimeout: 504,
} as const;
export type ReasonName = keyof typeof Reason;

/** An error that becomes an HTTP response: `status` from `reason`, `message` for the body. */
export class HttpError extends Error {
  readonly reason: ReasonName;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    reason: ReasonName,
    message: string,
    opts: { headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? {} : { cause: opts.cause });
    this.name = 'HttpError';
    this.reason = reason;
    this.status = Reason[reason];
    this.headers = opts.headers ?? {};
  }
}

/** Any thrown value as an HttpError (unknown errors become 500 InternalError). */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new HttpError('InternalError', message, { cause: err });
}

/** The JSON body of an error response. */
export function statusBody(err: HttpError): string {
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: err.message,
    reason: err.reason,
    code: err.status,
  });
}

/** Answers `res` with `err` (JSON body, its headers). */
export function sendError(res: ServerResponse, err: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = statusBody(err);
  res.writeHead(err.status, {
    ...err.headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/** Answers a not-yet-upgraded socket with `err` as a raw HTTP/1.1 response, then closes it. */
export function sendSocketError(socket: Duplex, err: HttpError): void {
  const body = statusBody(err);
  writeRawResponse(
    socket,
    err.status,
    { ...err.headers, 'content-type': 'application/json' },
    body,
  );
}

/** Writes a complete HTTP/1.1 response on a raw socket and ends it. */
export function writeRawResponse(
  socket: Duplex,
  status: number,
  headers: Readonly<Record<string, string | readonly string[]>>,
  body: string | Buffer,
): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}`];
  for (const [k, v] of Object.entries(headers)) {
    const lower = k.toLowerCase();
    if (lower === 'content-length' || lower === 'connection' || lower === 'transfer-encoding') {
      continue;
    }
    for (const one of typeof v === 'string' ? [v] : v) lines.push(`${k}: ${one}`);
  }
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  lines.push(`content-length: ${buf.length}`, 'connection: close', 'cache-control: no-store');
  socket.end(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), buf]));
}
