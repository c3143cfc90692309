// Proxies a WebSocket upgrade to the next hop of the exec chain, byte for byte: the upstream's
// answer decides everything. A 101 splices the two sockets (frames pass untouched, so the hop
// costs a socket copy and no WebSocket parsing); any other answer is relayed with its status,
// Retry-After and body, so a 404 or 429 deep in the chain reaches the user as it was.
// Errors on either socket end both and never escape (cf. node-http-proxy #1439, #1468).
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from '../log/index.ts';
import { TLS_VERSION } from '../tls/index.ts';
import { HttpError, sendSocketError, writeRawResponse } from './errors.ts';
import { REMOTE_GROUP_HEADER, REMOTE_USER_HEADER } from './identity.ts';

/** Where and how to reach the next hop. */
export interface Upstream {
  /** http: or https: URL, path and query included. */
  url: URL;
  /** TLS client options for https: (CA, client certificate and key). */
  tls?: ConnectionOptions;
  /** headers set on the upstream request (identity of the end user, for one). */
  headers?: Readonly<Record<string, string>>;
  /** give up when the upstream has not answered the upgrade within this; default 10 s. */
  timeoutMs?: number;
}

/** How a proxied session went. */
export type ProxyOutcome =
  | { kind: 'upgraded'; bytesUp: number; bytesDown: number }
  | { kind: 'refused'; status: number }
  | { kind: 'failed'; error: HttpError };

// Headers that belong to one hop only, never forwarded as they are.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'host',
  REMOTE_USER_HEADER,
  REMOTE_GROUP_HEADER,
]);
// Response headers worth relaying on a refused upgrade.
const RELAYED = ['content-type', 'retry-after', 'www-authenticate'];
const MAX_ERROR_BODY = 64 * 1024;

/**
 * Forwards the upgrade request `req` (whose socket is `client`, with `head` already read) to
 * `up`; resolves when the session or the refusal is over. Never rejects.
 */
export function proxyUpgrade(
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  up: Upstream,
  log: Logger,
): Promise<ProxyOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (o: ProxyOutcome): void => {
      if (!settled) {
        settled = true;
        resolve(o);
      }
    };
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    }
    Object.assign(headers, up.headers ?? {}, { connection: 'Upgrade', upgrade: 'websocket' });
    headers['host'] = up.url.host;
    const secure = up.url.protocol === 'https:';
    const hostname = up.url.hostname.replace(/^\[|\]$/g, '');
    const port = up.url.port === '' ? (secure ? 443 : 80) : Number(up.url.port);
    const options: https.RequestOptions = {
      method: req.method ?? 'GET',
      hostname,
      port,
      path: up.url.pathname + up.url.search,
      headers,
      // no agent: a connection of its own, never pooled (createConnection is used only then)
      ...(secure
        ? { agent: false, minVersion: TLS_VERSION, maxVersion: TLS_VERSION, ...up.tls }
        : { createConnection: () => connectLargeReads(hostname, port) }),
    };
    const proxyReq = (secure ? https : http).request(options);
    const target = `${up.url.protocol}//${up.url.host}`;

    const fail = (error: HttpError): void => {
      log.warn({ upstream: target, status: error.status, err: error.message }, 'exec proxy failed');
      sendSocketError(client, error);
      finish({ kind: 'failed', error });
    };
    const timer = setTimeout(() => {
      proxyReq.destroy();
      fail(
        new HttpError(
          'GatewayTimeout',
          `proxying exec to ${target}: no answer within ${up.timeoutMs ?? 10_000} ms`,
        ),
      );
    }, up.timeoutMs ?? 10_000);

    // the client may leave before the upstream answers
    const onClientGone = (): void => {
      clearTimeout(timer);
      proxyReq.destroy();
      finish({ kind: 'failed', error: new HttpError('BadRequest', 'client went away') });
    };
    client.on('error', onClientGone);
    client.once('close', onClientGone);

    proxyReq.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (settled) return;
      client.off('close', onClientGone);
      fail(
        new HttpError('BadGateway', `proxying exec to ${target}: ${err.code ?? err.message}`, {
          cause: err,
        }),
      );
    });

    proxyReq.on('response', (res) => {
      clearTimeout(timer);
      client.off('close', onClientGone);
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < MAX_ERROR_BODY) chunks.push(c);
        size += c.length;
      });
      res.on('error', () => res.destroy());
      res.on('close', () => {
        const relay: Record<string, string> = {};
        for (const h of RELAYED) {
          const v = res.headers[h];
          if (typeof v === 'string') relay[h] = v;
        }
        const status = res.statusCode ?? 502;
        writeRawResponse(client, status, relay, Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY));
        finish({ kind: 'refused', status });
      });
    });

    proxyReq.on('upgrade', (res: IncomingMessage, upstream: Socket, upHead: Buffer) => {
      clearTimeout(timer);
      client.off('close', onClientGone);
      client.off('error', onClientGone);
      if (client.destroyed) {
        upstream.destroy();
        finish({ kind: 'failed', error: new HttpError('BadRequest', 'client went away') });
        return;
      }
      const lines = [`HTTP/1.1 101 Switching Protocols`];
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
        lines.push(`${res.rawHeaders[i]!}: ${res.rawHeaders[i + 1]!}`);
      }
      client.write(lines.join('\r\n') + '\r\n\r\n');
      if (upHead.length > 0) client.write(upHead);
      if (head.length > 0) upstream.write(head);
      splice(client, upstream, (bytesUp, bytesDown) => {
        finish({ kind: 'upgraded', bytesUp, bytesDown });
      });
    });

    proxyReq.end();
  });
}

/** Largest read from a plain upstream socket (libuv reads at most 64 KiB at a time). */
export const LARGE_READ = 512 * 1024;

/**
 * A plain TCP connection whose reads take up to LARGE_READ bytes at once: a loopback upstream
 * that streams output (the broker behind the poollet) then costs one read(2), and one window
 * update waking its writer, per LARGE_READ rather than per 64 KiB. A read that fills a quarter
 * of the buffer or more is handed on as it is (a new buffer takes the next read); a smaller one
 * is copied out and the buffer reused, so keystrokes and short bursts never each hold 512 KiB.
 */
function connectLargeReads(host: string, port: number): net.Socket {
  let buffer = Buffer.allocUnsafe(LARGE_READ);
  const socket: net.Socket = net.connect({
    host,
    port,
    onread: {
      buffer: () => buffer,
      callback: (n: number, buf: Uint8Array): boolean => {
        let chunk: Buffer;
        if (n >= LARGE_READ / 4) {
          chunk = Buffer.from(buf.buffer, buf.byteOffset, n);
          buffer = Buffer.allocUnsafe(LARGE_READ);
        } else {
          chunk = Buffer.from(buf.subarray(0, n));
        }
        return socket.push(chunk);
      },
    },
  });
  return socket;
}

/** What a hop holds for a slow reader before it stops reading from the writer. */
export const SPLICE_HIGH_WATER = 256 * 1024;

/**
 * Forwards `from` into `to` like `from.pipe(to)`, but writes what arrives in one event-loop turn
 * as one batch: `to` is corked on the turn's first chunk and uncorked in the check phase, so a TLS
 * socket gets one writev (one SSL_write and one socket write) instead of one per ≤ 16 KiB record
 * its peer's TLS layer hands us. Backpressure: `from` is paused once `to` holds SPLICE_HIGH_WATER
 * bytes and resumed on 'drain'; the end of `from` ends `to` after the last batch.
 */
function forward(from: Duplex, to: Duplex, count: (n: number) => void): void {
  let corked = false;
  const flush = (): void => {
    corked = false;
    to.uncork();
  };
  from.on('data', (c: Buffer) => {
    count(c.length);
    if (to.destroyed || to.writableEnded) return;
    if (!corked) {
      corked = true;
      to.cork();
      setImmediate(flush);
    }
    to.write(c);
    // write() returned false long before this (highWaterMark 16 KiB), so 'drain' will follow
    if (to.writableLength >= SPLICE_HIGH_WATER) from.pause();
  });
  to.on('drain', () => {
    if (from.isPaused()) from.resume();
  });
  from.once('end', () => {
    if (!to.writableEnded) to.end(); // end() flushes a corked batch
  });
}

/**
 * Forwards a and b into each other (see forward). A close on one side ends the other once its
 * pending writes are flushed (the last output and the status frame must arrive); an error
 * destroys both.
 */
function splice(a: Duplex, b: Duplex, done: (aToB: number, bToA: number) => void): void {
  for (const s of [a, b]) {
    (s as Partial<Socket>).setNoDelay?.(true);
    (s as Partial<Socket>).setTimeout?.(0);
  }
  let aToB = 0;
  let bToA = 0;
  forward(a, b, (n) => (aToB += n));
  forward(b, a, (n) => (bToA += n));
  let closed = 0;
  const onClose = (other: Duplex) => (): void => {
    closed += 1;
    if (closed === 2) {
      done(aToB, bToA);
      return;
    }
    other.end();
    // a peer that never closes its side must not hold the socket forever
    setTimeout(() => other.destroy(), 5_000).unref();
  };
  const onError = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', onError);
  b.on('error', onError);
  a.once('close', onClose(b));
  b.once('close', onClose(a));
}
