// The webterminal HTTP(S) server: the UI's static files with strict security headers, the
// session API, and the attach WebSocket, upgraded only after the attach token, the user and the
// Origin are checked.
import { readFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { SecureContextOptions } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { HttpError, sendError, sendSocketError, toHttpError } from '../../shared/http/errors.ts';
import {
  checkWebSocketHandshake,
  closeServer,
  handleHealth,
  limitConnections,
  listen,
  readBody,
  requestUrl,
  serverOptions,
  SessionSet,
} from '../../shared/http/server.ts';
import type { Logger } from '../../shared/log/index.ts';
import {
  Channel,
  decodeFrame,
  encodeFrame,
  encodeStatus,
  parseResize,
  V5_PROTOCOL,
  type Clock,
} from '../../shared/stream/index.ts';
import { inputGate } from '../../shared/stream/input.ts';
import { Authenticator, COOKIE_NAME, type Caller } from './auth.ts';
import { restartOnlyChanges, type WebterminalConfig } from './config.ts';
import { mayUseTarget, SessionManager, type Attachment, type StartTarget } from './sessions.ts';

/** TLS material (read by the caller: main reads files, tests pass PEM). */
export interface TlsMaterial {
  cert: string | Buffer;
  key: string | Buffer;
  clientCa?: string | Buffer;
}

/** The TLS context of the listener: at start and for every reload. */
function secureContextOf(t: TlsMaterial): SecureContextOptions {
  return {
    cert: t.cert,
    key: t.key,
    minVersion: 'TLSv1.3',
    ...(t.clientCa === undefined ? {} : { ca: t.clientCa }),
  };
}

export interface WebterminalDeps {
  log: Logger;
  clock: Clock;
  start: StartTarget;
  tls?: TlsMaterial;
}

export interface Webterminal {
  address: AddressInfo;
  /** `https://127.0.0.1:PORT` */
  origin: string;
  sessions: SessionManager;
  auth: Authenticator;
  /** the config in effect */
  readonly config: WebterminalConfig;
  /**
   * Applies a reloaded config: targets, tokens and the rest of [auth], [sessions], the CSP
   * allowlist, origins, the UI directory, and (with `tls`) new TLS material for new connections.
   * Live sessions go on. Throws, changing nothing, when a key that needs a restart changed.
   */
  reload(next: WebterminalConfig, tls?: TlsMaterial): void;
  close(): Promise<void>;
}

const UI_FILES: Readonly<Record<string, string>> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
  '/xterm.css': 'xterm.css',
};
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};
const ATTACH_PATH = /^\/api\/terminals\/([0-9a-f-]{36})\/attach$/;
const SESSION_PATH = /^\/api\/terminals\/([0-9a-f-]{36})(\/heartbeat|\/share)?$/;
const MAX_BODY = 4096;

/** The Content-Security-Policy of every response (a pure function). */
export function contentSecurityPolicy(allowedHosts: readonly string[]): string {
  const connect = ["'self'", ...allowedHosts.flatMap((h) => [`wss://${h}`, `https://${h}`])];
  return [
    "default-src 'none'",
    "script-src 'self'",
    // xterm.js sizes its rows through a <style> element it creates at run time
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src ${connect.join(' ')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
  ].join('; ');
}

/** Starts the server on the configured address. */
export async function startWebterminal(
  config: WebterminalConfig,
  deps: WebterminalDeps,
): Promise<Webterminal> {
  const log = deps.log.child({ component: 'webterminal' });
  let cfg = config;
  const secure = deps.tls !== undefined;
  const sessions = new SessionManager({
    ttlMs: cfg.sessions.ttl,
    readyTimeoutMs: cfg.sessions.ready_timeout,
    maxPerUser: cfg.sessions.max_per_user,
    maxTotal: cfg.sessions.max_total,
    attachTokenTtlMs: cfg.sessions.attach_token_ttl,
    scrollback: cfg.sessions.scrollback,
    maxAttachments: cfg.sessions.max_attachments,
    targets: () => cfg.targets,
    start: deps.start,
    clock: deps.clock,
    log,
  });
  const auth = new Authenticator({
    tokens: () => cfg.auth.tokens,
    trustedProxies: () => cfg.auth.trusted_proxies,
    certificates: () => deps.tls?.clientCa !== undefined,
    cookieTtlMs: () => cfg.auth.cookie_ttl,
    clock: deps.clock,
  });
  // built once per config in effect: a reload changes the CSP of the next response
  const headersFor = (c: WebterminalConfig): Record<string, string> => ({
    'content-security-policy': contentSecurityPolicy(c.allowed_host_source_list),
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    ...(secure ? { 'strict-transport-security': 'max-age=31536000' } : {}),
  });
  let securityHeaders = headersFor(cfg);

  const opts = serverOptions();
  const server = secure
    ? https.createServer({
        ...opts,
        ...secureContextOf(deps.tls!),
        ...(deps.tls!.clientCa !== undefined
          ? { requestCert: true, rejectUnauthorized: false }
          : {}),
      })
    : http.createServer(opts);
  // at most 1,024 connections; one that sends no request within 15 s is closed
  limitConnections(server);
  const sockets = new SessionSet();
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 1 << 20,
    handleProtocols: (offered) => (offered.has(V5_PROTOCOL) ? V5_PROTOCOL : false),
  });

  // without public_origins (only with TLS: the config requires them for plain HTTP) the Host
  // header the browser sent is ours
  const selfOrigins = (req: IncomingMessage): string[] =>
    cfg.public_origins.length > 0
      ? cfg.public_origins.map((o) => new URL(o).origin)
      : [`https://${req.headers.host ?? ''}`];

  /**
   * Browsers always send Origin on WebSockets and on cross-site POSTs; a cookie caller must
   * come from our own origin (CSRF, cross-site WebSocket hijacking). Other callers may omit it.
   */
  const checkOrigin = (req: IncomingMessage, caller: Caller): void => {
    const origin = req.headers.origin;
    if (origin === undefined) {
      if (caller.method === 'cookie') {
        throw new HttpError('Forbidden', 'checking origin: a browser request without Origin');
      }
      return;
    }
    if (!selfOrigins(req).includes(origin)) {
      throw new HttpError('Forbidden', `checking origin: ${origin} is not allowed`);
    }
  };

  const json = (res: ServerResponse, status: number, body: unknown, extra = {}): void => {
    const text = status === 204 ? '' : JSON.stringify(body);
    res.writeHead(status, {
      ...securityHeaders,
      ...extra,
      'cache-control': 'no-store',
      ...(status === 204
        ? {}
        : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }),
    });
    res.end(text);
  };

  const readJson = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
    const body = await readBody(req, MAX_BODY);
    if (body.length === 0) return {};
    try {
      const v: unknown = JSON.parse(body.toString('utf8'));
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
        return v as Record<string, unknown>;
      }
    } catch {
      // answered below
    }
    throw new HttpError('BadRequest', 'reading request: body is not a JSON object');
  };

  const serveStatic = async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const file = UI_FILES[requestUrl(req).pathname];
    if (file === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    let body: Buffer;
    try {
      body = await readFile(path.join(cfg.ui_dir, file));
    } catch (err) {
      throw new HttpError('NotFound', `serving ${file}: ${(err as NodeJS.ErrnoException).code}`);
    }
    res.writeHead(200, {
      ...securityHeaders,
      'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': body.length,
      'cache-control': 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };

  const attachUrl = (req: IncomingMessage, id: string, token: string): string => {
    const origin = selfOrigins(req)[0]!.replace(/^http/, 'ws');
    return `${origin}/api/terminals/${id}/attach?token=${encodeURIComponent(token)}`;
  };

  async function api(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestUrl(req);
    const p = url.pathname;
    const method = req.method ?? 'GET';
    if (p === '/api/login' && method === 'POST') {
      const caller = auth.authenticate(req);
      checkOrigin(req, caller);
      const value = auth.login({ user: caller.user, groups: caller.groups }, caller.tokenSha256);
      const maxAge = Math.floor(cfg.auth.cookie_ttl / 1000);
      // Secure also over plain HTTP: that is the hop from the TLS proxy; browsers accept it from
      // http://localhost too
      const cookie = `${COOKIE_NAME}=${value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${maxAge}`;
      json(res, 200, { user: caller.user, groups: caller.groups }, { 'set-cookie': cookie });
      return;
    }
    const caller = auth.authenticate(req);
    if (method !== 'GET' && method !== 'HEAD') checkOrigin(req, caller);
    if (p === '/api/logout' && method === 'POST') {
      auth.logout(req);
      json(res, 204, null, {
        'set-cookie': `${COOKIE_NAME}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0`,
      });
      return;
    }
    if (p === '/api/whoami' && method === 'GET') {
      json(res, 200, { user: caller.user, groups: caller.groups, method: caller.method });
      return;
    }
    if (p === '/api/targets' && method === 'GET') {
      json(res, 200, {
        targets: cfg.targets
          .filter((t) => mayUseTarget(t, caller))
          .map((t) => ({ name: t.name, title: t.title ?? t.name, type: t.type })),
      });
      return;
    }
    if (p === '/api/terminals') {
      if (method === 'GET') {
        json(res, 200, { terminals: sessions.list(caller).map((s) => s.view()) });
        return;
      }
      if (method === 'POST') {
        const body = await readJson(req);
        if (typeof body['target'] !== 'string') {
          throw new HttpError('BadRequest', 'creating terminal: "target" must be a string');
        }
        const { session, reused } = sessions.create(caller, body['target']);
        json(res, reused ? 200 : 201, { ...session.view(), reused });
        return;
      }
      throw new HttpError('MethodNotAllowed', `${method} ${p} is not supported`);
    }
    const m = SESSION_PATH.exec(p);
    if (m === null) throw new HttpError('NotFound', `no route ${method} ${p}`);
    const id = m[1]!;
    const sub = m[2];
    if (sub === undefined && method === 'GET') {
      const s = sessions.get(id, caller, 'view');
      await sessions.waitReady(s);
      const grant = sessions.attachToken(s, caller.user);
      json(res, 200, {
        ...s.view(),
        readOnly: grant.readOnly,
        heartbeatIntervalMs: Math.max(1000, Math.floor(cfg.sessions.ttl / 3)),
        attach: {
          url: attachUrl(req, s.id, grant.token),
          token: grant.token,
          expiresInMs: grant.expiresInMs,
        },
      });
      return;
    }
    if (sub === undefined && method === 'DELETE') {
      const s = sessions.get(id, caller, 'owner');
      await sessions.delete(s, `session deleted by ${caller.user}`);
      json(res, 204, null);
      return;
    }
    if (sub === '/heartbeat' && method === 'POST') {
      sessions.heartbeat(sessions.get(id, caller, 'owner'));
      json(res, 204, null);
      return;
    }
    if (sub === '/share' && method === 'POST') {
      const s = sessions.get(id, caller, 'owner');
      const body = await readJson(req);
      const user = body['user'];
      if (typeof user !== 'string' || user === '' || user === caller.user) {
        throw new HttpError('BadRequest', 'sharing terminal: "user" must name another user');
      }
      s.viewers.add(user);
      json(res, 200, s.view());
      return;
    }
    throw new HttpError('MethodNotAllowed', `${method} ${p} is not supported`);
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (handleHealth(req, res, () => server.listening)) return;
    void (async () => {
      if (requestUrl(req).pathname.startsWith('/api/')) await api(req, res);
      else if (!(await serveStatic(req, res))) {
        throw new HttpError('NotFound', `no route ${requestUrl(req).pathname}`);
      }
    })().catch((err: unknown) => {
      const e = toHttpError(err);
      if (e.status >= 500) log.warn({ status: e.status, err: e.message }, 'request failed');
      else log.debug({ status: e.status, err: e.message }, 'request refused');
      if (!res.headersSent) {
        for (const [k, v] of Object.entries(securityHeaders)) res.setHeader(k, v);
      }
      sendError(res, e);
    });
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => {
      log.debug({ err: err.message }, 'client socket error');
    });
    sockets.add(socket);
    try {
      attach(req, socket, head);
    } catch (err) {
      const e = toHttpError(err);
      log.info({ status: e.status, err: e.message }, 'attach refused');
      sendSocketError(socket, e);
    }
  });

  function attach(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = requestUrl(req);
    const m = ATTACH_PATH.exec(url.pathname);
    if (m === null) throw new HttpError('NotFound', `no route ${url.pathname}`);
    // a malformed handshake, another user or a foreign Origin must not use up the token
    checkWebSocketHandshake(req, V5_PROTOCOL);
    const caller = auth.authenticate(req);
    checkOrigin(req, caller);
    const { grant, session: s } = sessions.takeAttachToken(
      url.searchParams.get('token') ?? '',
      m[1]!,
      caller.user,
    );
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const a: Attachment = {
        readOnly: grant.readOnly,
        send: (d) => {
          if (ws.readyState === ws.OPEN) {
            ws.send(encodeFrame(Channel.stdout, d), () => {
              s.drained();
            });
          }
        },
        buffered: () => ws.bufferedAmount,
        end: (status) => {
          if (ws.readyState === ws.OPEN) {
            ws.send(encodeStatus(status));
            ws.close(1000);
            // a peer that reads nothing never completes the close: its buffer must go anyway
            const t = setTimeout(() => {
              ws.terminate();
            }, 5_000);
            t.unref();
            ws.once('close', () => {
              clearTimeout(t);
            });
          }
        },
      };
      const detach = s.attach(a);
      const input = inputGate(ws);
      log.info({ session: s.id, user: caller.user, readOnly: grant.readOnly }, 'attached');
      ws.on('message', (msg: Buffer) => {
        let f;
        try {
          f = decodeFrame(msg);
        } catch {
          return;
        }
        if (f.channel === Channel.stdin) {
          if (!s.input(a, f.data)) {
            input.pause((fn) => {
              s.onceInputDrained(fn);
            });
          }
        } else if (f.channel === Channel.resize) {
          try {
            s.resize(a, parseResize(f.data));
          } catch {
            // a malformed resize changes nothing
          }
        }
      });
      ws.on('error', () => undefined);
      ws.once('close', () => {
        input.close();
        detach();
        log.info({ session: s.id, user: caller.user }, 'detached');
      });
    });
  }

  const startSweep = (everyMs: number): NodeJS.Timeout => {
    const t = setInterval(() => {
      void sessions.sweep().catch((err: unknown) => {
        log.warn({ err: (err as Error).message }, 'sweeping sessions failed');
      });
    }, everyMs);
    t.unref();
    return t;
  };
  let sweepTimer = startSweep(cfg.sessions.sweep_interval);

  const reload = (next: WebterminalConfig, tls?: TlsMaterial): void => {
    const fixed = restartOnlyChanges(cfg, next);
    if (fixed.length > 0) {
      throw new Error(
        `applying the new configuration: ${fixed.join(', ')} changed, which takes a restart ` +
          '(systemctl restart webterminal); nothing was changed',
      );
    }
    if (tls !== undefined && server instanceof https.Server) {
      // new connections get the new certificate; open ones keep theirs
      server.setSecureContext(secureContextOf(tls));
    }
    const before = cfg;
    cfg = next;
    securityHeaders = headersFor(next);
    sessions.configure({
      ttlMs: next.sessions.ttl,
      readyTimeoutMs: next.sessions.ready_timeout,
      maxPerUser: next.sessions.max_per_user,
      maxTotal: next.sessions.max_total,
      attachTokenTtlMs: next.sessions.attach_token_ttl,
      scrollback: next.sessions.scrollback,
      maxAttachments: next.sessions.max_attachments,
    });
    if (next.sessions.sweep_interval !== before.sessions.sweep_interval) {
      clearInterval(sweepTimer);
      sweepTimer = startSweep(next.sessions.sweep_interval);
    }
    log.info(
      {
        targets: next.targets.map((t) => t.name),
        tokens: next.auth.tokens.length,
        liveSessions: sessions.size,
      },
      'configuration applied',
    );
  };

  const address = await listen(server, cfg.listen.host, cfg.listen.port);
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  log.info({ address: `${host}:${address.port}`, tls: secure }, 'listening');
  return {
    address,
    origin: `${secure ? 'https' : 'http'}://${host}:${address.port}`,
    sessions,
    auth,
    get config() {
      return cfg;
    },
    reload,
    async close() {
      clearInterval(sweepTimer);
      // stop accepting first: no session may start after closeAll took its snapshot
      server.close();
      await sessions.closeAll();
      await closeServer(server, sockets, 2_000);
    },
  };
}
