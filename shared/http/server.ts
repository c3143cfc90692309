// Server-side pieces the exec daemons share: limits every listener gets, the exec route,
// /healthz and /readyz, bounded bodies, listening and closing.
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log/index.ts';
import { serverContextOptions, type CertificateMaterial } from '../tls/index.ts';
import { HttpError, sendError, sendSocketError, toHttpError } from './errors.ts';

/** Limits of a listener (all have defaults). */
export interface ServerLimits {
  /** time to receive the request headers, once a request has started; default 10 s. */
  headersTimeoutMs?: number;
  /** time to receive a whole (non-upgrade) request; default 30 s. */
  requestTimeoutMs?: number;
  /** largest header block; default 16 KiB. */
  maxHeaderSize?: number;
  /** time to complete a TLS handshake; default 10 s. */
  handshakeTimeoutMs?: number;
  /**
   * time from accepting a connection (after TLS, the handshake) to the first request's headers;
   * default headersTimeoutMs + 5 s, so that a request that did start gets its 408 first.
   */
  firstRequestTimeoutMs?: number;
  /** open connections at most; more are closed as they come; default 1024. */
  maxConnections?: number;
}

/** Default of ServerLimits.maxConnections. */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/**
 * node:http(s) server options enforcing `limits`. A connection idle between requests closes after
 * keepAliveTimeout; `limitConnections` bounds the rest.
 */
export function serverOptions(
  limits: ServerLimits = {},
): ServerOptions & { handshakeTimeout: number } {
  return {
    maxHeaderSize: limits.maxHeaderSize ?? 16 * 1024,
    headersTimeout: limits.headersTimeoutMs ?? 10_000,
    requestTimeout: limits.requestTimeoutMs ?? 30_000,
    keepAliveTimeout: 5_000,
    // node:https only; node's default is 120 s
    handshakeTimeout: limits.handshakeTimeoutMs ?? 10_000,
  };
}

/**
 * What `serverOptions` cannot say: caps `server`'s connections at `limits.maxConnections` and
 * closes a connection whose first request's headers have not arrived within
 * `limits.firstRequestTimeoutMs` of it being accepted (node's headersTimeout and requestTimeout
 * start only with a request, so one that sends nothing would stay open forever).
 */
export function limitConnections(server: Server | https.Server, limits: ServerLimits = {}): void {
  server.maxConnections = limits.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const ms = limits.firstRequestTimeoutMs ?? (limits.headersTimeoutMs ?? 10_000) + 5_000;
  const timers = new WeakMap<Duplex, NodeJS.Timeout>();
  const arm = (socket: Duplex): void => {
    const timer = setTimeout(() => {
      socket.destroy();
    }, ms);
    timer.unref();
    timers.set(socket, timer);
    socket.once('close', () => {
      clearTimeout(timer);
    });
  };
  const disarm = (socket: Duplex): void => {
    clearTimeout(timers.get(socket));
    timers.delete(socket);
  };
  // for TLS, the socket that requests arrive on exists once the handshake is done
  server.on(server instanceof https.Server ? 'secureConnection' : 'connection', arm);
  server.on('request', (req: IncomingMessage) => {
    disarm(req.socket);
  });
  server.on('upgrade', (req: IncomingMessage) => {
    disarm(req.socket);
  });
}

/** The machine a request path names, or undefined when it is not the exec route. */
export interface ExecTarget {
  namespace: string;
  name: string;
}

const EXEC_PATH = /^\/apis\/compute\.ironcore\.dev\/namespaces\/([^/]+)\/machines\/([^/]+)\/exec$/;
// RFC 1123 subdomain, as Kubernetes object names are
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Parses the exec route; HttpError BadRequest for a malformed namespace or name. */
export function parseExecPath(pathname: string): ExecTarget | undefined {
  const m = EXEC_PATH.exec(pathname);
  if (m === null) return undefined;
  let namespace: string, name: string;
  try {
    namespace = decodeURIComponent(m[1]!);
    name = decodeURIComponent(m[2]!);
  } catch {
    throw new HttpError('BadRequest', `parsing exec path ${pathname}: malformed percent-encoding`);
  }
  for (const [what, v] of [
    ['namespace', namespace],
    ['machine name', name],
  ] as const) {
    if (!OBJECT_NAME.test(v)) {
      throw new HttpError(
        'BadRequest',
        `parsing exec path: ${what} ${JSON.stringify(v)} is not a valid name`,
      );
    }
  }
  return { namespace, name };
}

/** The exec route of machine `namespace/name`. */
export function execPath(t: ExecTarget): string {
  return `/apis/compute.ironcore.dev/namespaces/${encodeURIComponent(t.namespace)}/machines/${encodeURIComponent(t.name)}/exec`;
}

/** Whether the request asks for a TTY (`?tty=true` or `?tty=1`). */
export function wantsTty(url: URL): boolean {
  const v = url.searchParams.get('tty');
  return v === 'true' || v === '1';
}

/**
 * The request's URL (path and query), parsed. Throws a 400 HttpError for a target the WHATWG
 * parser refuses (`GET //[`): Node's HTTP parser lets such targets through.
 */
export function requestUrl(req: IncomingMessage): URL {
  try {
    return new URL(req.url ?? '/', 'http://request.invalid');
  } catch {
    throw new HttpError(
      'BadRequest',
      `parsing the request target ${JSON.stringify(req.url)}: not a valid URL path`,
    );
  }
}

/** Answers /healthz (always 200 while serving) and /readyz (200 when `ready()`); false for other paths. */
export function handleHealth(
  req: IncomingMessage,
  res: ServerResponse,
  ready: () => boolean,
): boolean {
  let p: string;
  try {
    p = requestUrl(req).pathname;
  } catch {
    return false; // not a health path; the caller's routing answers 400
  }
  if (p !== '/healthz' && p !== '/readyz') return false;
  const ok = p === '/healthz' || ready();
  const body = ok ? 'ok\n' : 'not ready\n';
  res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
  return true;
}

/** Reads a request body of at most `max` bytes; HttpError PayloadTooLarge beyond. */
export async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) {
    throw new HttpError('PayloadTooLarge', `reading request body: ${declared} bytes exceed ${max}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      throw new HttpError('PayloadTooLarge', `reading request body: more than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Listens on `host:port` (port 0 picks one) and resolves to the bound address. */
export function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new Error(`listening on ${host}:${port}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Tracks upgraded sockets so that a shutdown can end the sessions still open. */
export class SessionSet {
  readonly #sockets = new Set<Duplex>();
  get size(): number {
    return this.#sockets.size;
  }
  add(socket: Duplex): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }
  destroyAll(): void {
    for (const s of this.#sockets) s.destroy();
  }
}

/**
 * Stops accepting, waits up to `graceMs` for open sessions to end, then has `endSessions` end
 * them properly (a status to the client, the processes behind them killed and waited for) and
 * destroys the sockets still left.
 */
export async function closeServer(
  server: Server,
  sessions: SessionSet,
  graceMs: number,
  endSessions?: () => Promise<void>,
): Promise<void> {
  const closed = new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
  server.closeIdleConnections();
  const deadline = Date.now() + graceMs;
  while (sessions.size > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  if (endSessions !== undefined) await endSessions();
  sessions.destroyAll();
  server.closeAllConnections();
  await closed;
}

/** Handles one WebSocket upgrade; throwing (an HttpError or anything) refuses it. */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>;

/**
 * Routes every upgrade on `server` to `serve`: the socket is tracked in `sessions`, its errors are
 * logged rather than thrown (a reset client must not crash the daemon), and a refusal is written
 * to the raw socket as an HTTP error response.
 */
export function handleUpgrades(
  server: Server,
  sessions: SessionSet,
  log: Logger,
  serve: UpgradeHandler,
): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => {
      log.debug({ err: err.message }, 'client socket error');
    });
    sessions.add(socket);
    void serve(req, socket, head).catch((err: unknown) => {
      const e = toHttpError(err);
      log.warn({ status: e.status, err: e.message }, 'exec refused');
      sendSocketError(socket, e);
    });
  });
}

// an RFC 7230 token, which is what a subprotocol name is
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Checks that `req` is a WebSocket handshake `ws` will accept and that it offers `protocol`;
 * HttpError MethodNotAllowed or BadRequest, saying what is wrong, when not. A hop calls it before
 * it asks anything of the next one (the broker before it spends a one-time token), so that a
 * malformed handshake costs nothing downstream. At least as strict as `ws`'s own checks.
 */
export function checkWebSocketHandshake(req: IncomingMessage, protocol: string): void {
  const what = 'checking the WebSocket handshake';
  if (req.method !== 'GET') {
    throw new HttpError('MethodNotAllowed', `${what}: method ${req.method ?? '?'}, expected GET`, {
      headers: { allow: 'GET' },
    });
  }
  const upgrade = req.headers.upgrade;
  if (upgrade?.toLowerCase() !== 'websocket') {
    throw new HttpError(
      'BadRequest',
      `${what}: Upgrade ${JSON.stringify(upgrade)}, expected websocket`,
    );
  }
  const version = req.headers['sec-websocket-version'];
  if (version !== '13') {
    throw new HttpError(
      'BadRequest',
      `${what}: Sec-WebSocket-Version ${JSON.stringify(version)}, expected 13`,
    );
  }
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key)) {
    throw new HttpError(
      'BadRequest',
      `${what}: Sec-WebSocket-Key missing or not 16 bytes in base64`,
    );
  }
  const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  const valid = offered.every((p) => TOKEN.test(p)) && new Set(offered).size === offered.length;
  if (!valid || !offered.includes(protocol)) {
    throw new HttpError(
      'BadRequest',
      `${what}: Sec-WebSocket-Protocol ${JSON.stringify(req.headers['sec-websocket-protocol'] ?? '')} ` +
        `does not offer ${protocol}${valid ? '' : ' as a list of distinct names'}`,
    );
  }
}

/**
 * Answers plain (non-upgrade) requests of an exec endpoint: /healthz and /readyz, 404 off the
 * exec route, the caller's authentication error (401) from `authenticate`, else 400 saying that
 * exec needs a WebSocket upgrade.
 */
export function handlePlainExecRequests(
  server: Server,
  authenticate: (socket: IncomingMessage['socket']) => unknown,
): void {
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (handleHealth(req, res, () => server.listening)) return;
    try {
      const path = requestUrl(req).pathname;
      if (parseExecPath(path) === undefined) throw new HttpError('NotFound', `no route ${path}`);
      authenticate(req.socket);
      throw new HttpError('BadRequest', 'exec needs a WebSocket upgrade (v5.channel.k8s.io)');
    } catch (err) {
      sendError(res, toHttpError(err));
    }
  });
}

/**
 * The mTLS listener of an exec endpoint (exec-gateway, machinepoollet): TLS 1.3, client
 * certificates requested and verified against `tls.ca` — but a caller without a valid one still
 * completes the handshake, so that `authenticate` can answer 401 with a body — with the plain
 * requests and the upgrades routed as `handlePlainExecRequests` and `handleUpgrades` do.
 */
export function createExecServer(opts: {
  tls: CertificateMaterial;
  log: Logger;
  authenticate: (socket: IncomingMessage['socket']) => unknown;
  serve: UpgradeHandler;
}): { server: https.Server; sessions: SessionSet } {
  const sessions = new SessionSet();
  const server = https.createServer({
    ...serverOptions(),
    ...serverContextOptions({ ...opts.tls, requestCert: true }),
    rejectUnauthorized: false,
  });
  limitConnections(server);
  server.on('tlsClientError', (err) => {
    opts.log.debug({ err: err.message }, 'tls handshake failed');
  });
  handlePlainExecRequests(server, opts.authenticate);
  handleUpgrades(server, sessions, opts.log, opts.serve);
  return { server, sessions };
}
