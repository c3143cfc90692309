// Proxies a WebSocket upgrade to the next hop of the exec chain, byte for byte: the upstream's
// answer decides everything. A 101 splices the two sockets (frames pass untouched, so the hop
// costs a socket copy and no WebSocket parsing); any other answer is relayed with its status,
// Retry-After and body, so a 404 or 429 deep in the chain reaches the user as it was.
// Errors on either socket end both and never escape (cf. node-http-proxy #1439, #1468).
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import net, { type OnReadOpts, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type ConnectionOptions } from 'node:tls';
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
  /** once one side closed, cut the other when its pending output drains nothing for this long. */
  drainIdleMs?: number;
  /**
   * The hop's owner is stopping: once `signal` aborts, a spliced session ends with a binary
   * message of `message(reason)` and a 1001 close to the client, then the upstream connection is
   * cut. The hop watches the upstream's frame boundaries for this (headers only); when the client
   * has part of a frame or of a fragmented message, nothing can be added and both sides are cut.
   */
  stop?: { signal: AbortSignal; message: (reason: unknown) => Buffer };
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
// What a hop keeps of a client's bytes sent before the upstream's answer; then it stops reading.
const MAX_EARLY_DATA = 64 * 1024;

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
    const reads = new UpstreamReads(secure ? TLS_BATCH : PLAIN_BATCH);
    const connect = (): Socket => {
      if (!secure) return net.connect({ host: hostname, port, onread: reads.onread });
      // tls.connect takes onread as net.connect does (Node 20: reads of cleartext records land
      // in it); @types/node leaves it out
      const tlsOptions: ConnectionOptions & { onread: OnReadOpts } = {
        host: hostname,
        port,
        // SNI takes host names only
        ...(net.isIP(hostname) === 0 ? { servername: hostname } : {}),
        minVersion: TLS_VERSION,
        maxVersion: TLS_VERSION,
        ...up.tls,
        onread: reads.onread,
      };
      return tls.connect(tlsOptions);
    };
    let conn: Socket | undefined;
    const options: https.RequestOptions = {
      method: req.method ?? 'GET',
      hostname,
      port,
      path: up.url.pathname + up.url.search,
      headers,
      // a connection of its own, never pooled (no agent is used with createConnection)
      createConnection: () => (conn = reads.attach(connect())),
    };
    const target = `${up.url.protocol}//${up.url.host}`;
    const fail = (error: HttpError): void => {
      log.warn({ upstream: target, status: error.status, err: error.message }, 'exec proxy failed');
      sendSocketError(client, error);
      finish({ kind: 'failed', error });
    };
    let proxyReq: http.ClientRequest;
    try {
      proxyReq = (secure ? https : http).request(options);
    } catch (err) {
      // refused before anything was sent: a header value outside Latin-1 (ERR_INVALID_CHAR), say
      const message = err instanceof Error ? err.message : String(err);
      fail(
        new HttpError('InternalError', `proxying exec to ${target}: ${message}`, { cause: err }),
      );
      return;
    }
    // the deadline covers a refusal's body too: an upstream that stalls after its headers must
    // not hold the client
    const timeoutMs = up.timeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      proxyReq.destroy();
      fail(
        new HttpError(
          'GatewayTimeout',
          `proxying exec to ${target}: no complete answer within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);

    // the client may leave before the upstream's answer is complete; the upstream connection goes
    // too (a refusal's as well: the request lets go of it once the response is read)
    const onClientGone = (): void => {
      clearTimeout(timer);
      proxyReq.destroy();
      conn?.destroy();
      client.destroy();
      finish({ kind: 'failed', error: new HttpError('BadRequest', 'client went away') });
    };
    client.on('error', onClientGone);
    client.once('close', onClientGone);
    // only a socket that is read shows its peer's leaving ('end'); a WebSocket client sends
    // nothing before the 101, but what comes anyway goes upstream after `head`
    const early: Buffer[] = [];
    let earlySize = 0;
    const keepEarly = (c: Buffer): void => {
      early.push(c);
      if ((earlySize += c.length) >= MAX_EARLY_DATA) client.pause();
    };
    client.on('data', keepEarly);
    client.once('end', onClientGone);

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

    // a refusal: relayed once its body is complete; the client's close still ends the upstream
    // connection (and an early one, the wait)
    proxyReq.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < MAX_ERROR_BODY) chunks.push(c);
        size += c.length;
      });
      res.on('error', () => res.destroy());
      res.on('close', () => {
        clearTimeout(timer);
        conn?.destroy();
        if (settled) return; // timed out, or the client left
        const status = res.statusCode ?? 502;
        if (!res.complete) {
          fail(
            new HttpError(
              'BadGateway',
              `proxying exec to ${target}: connection closed in the middle of a ${status} answer`,
            ),
          );
          return;
        }
        const relay: Record<string, string> = {};
        for (const h of RELAYED) {
          const v = res.headers[h];
          if (typeof v === 'string') relay[h] = v;
        }
        writeRawResponse(client, status, relay, Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY));
        finish({ kind: 'refused', status });
      });
    });

    proxyReq.on('upgrade', (res: IncomingMessage, upstream: Socket, upHead: Buffer) => {
      clearTimeout(timer);
      client.off('close', onClientGone);
      client.off('error', onClientGone);
      client.off('end', onClientGone);
      // splice takes over the client's reads in this same turn, so no chunk goes unread
      client.off('data', keepEarly);
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
      const frames = up.stop === undefined ? undefined : new FrameTracker();
      if (frames !== undefined) reads.track(frames);
      frames?.feed(upHead, 0, upHead.length);
      if (upHead.length > 0) client.write(upHead);
      if (head.length > 0) upstream.write(head);
      for (const c of early) upstream.write(c);
      splice(
        client,
        upstream,
        reads,
        up.drainIdleMs ?? SPLICE_DRAIN_IDLE_MS,
        (bytesUp, bytesDown) => {
          finish({ kind: 'upgraded', bytesUp, bytesDown });
        },
        up.stop === undefined || frames === undefined ? undefined : { ...up.stop, frames },
      );
      // paused by keepEarly when the client sent much before the 101
      if (client.isPaused()) client.resume();
    });

    proxyReq.end();
  });
}

/**
 * How much of an upstream's output a hop gathers into one write to the client: from a plain
 * upstream (the broker behind the poollet) reads this large are what saves CPU (fewer read(2)
 * calls and window updates; 128 KiB batches cost the poollet 0.62 cpu s/GiB against 0.49); a TLS
 * upstream hands over ≤ 16 KiB records whatever the room, and 128 KiB does as well as 512 there.
 * An idle session holds one batch.
 */
export const PLAIN_BATCH = 512 * 1024;
export const TLS_BATCH = 128 * 1024;
// Full batches whose writes are done wait here for the next session that fills one: fresh
// memory costs page faults (and, on hosts with free-page reporting, a round trip to the
// hypervisor) for every page. Shared by every hop in the process, per batch size.
const SPARE_BATCHES = 8;
const spareBatches = new Map<number, Batch[]>();

/** A batch buffer and the writes of it not yet done. */
interface Batch {
  buf: Buffer;
  pending: number;
}

/**
 * The reads of an upstream socket, taken into buffers the hop owns (net's `onread`) rather than
 * a new buffer per ≤ 16 KiB TLS record or ≤ 64 KiB read. Until the upgrade, each read is copied
 * and pushed into the socket's stream for the HTTP client, as usual. From `sendTo(client)` on,
 * reads land one after another in a batch (PLAIN_BATCH or TLS_BATCH bytes); what arrived in one
 * event-loop turn is written to the client as one slice of it (one SSL_write, one socket
 * write), with no stream events and no copy in between. Reads from a plain loopback upstream (the broker behind the
 * poollet) take up to the batch's free room at once: one read(2), and one window update waking
 * its writer, per few hundred KiB rather than per 64 KiB.
 *
 * The socket's buffer is always the free room of the current batch; a batch is replaced only
 * inside a read callback (net asks for the next buffer right after it), so a read never lands
 * in memory already handed to a write. A full batch is reused once every write of it is done.
 */
export class UpstreamReads {
  // bytes per batch
  private readonly size: number;
  // a batch is written out once less than this is left in it, so reads stay large
  private readonly minRoom: number;
  private batch: Batch;
  private used = 0;
  // where the part not yet written starts
  private start = 0;
  private to: Duplex | undefined;
  private count: (n: number) => void = () => {};
  private flushQueued = false;
  private socket: net.Socket | undefined;
  private frames: FrameTracker | undefined;

  constructor(size: number) {
    this.size = size;
    this.minRoom = size / 4;
    this.batch = this.newBatch();
  }

  /** The `onread` option for the upstream socket. */
  readonly onread = {
    buffer: (): Buffer => this.batch.buf.subarray(this.used),
    callback: (n: number): boolean => this.onRead(n),
  };

  /** Tells which socket these reads come from (the one created with `onread`). */
  attach(socket: net.Socket): net.Socket {
    this.socket = socket;
    return socket;
  }

  /** Has every byte forwarded from now on go through `frames` too. */
  track(frames: FrameTracker): void {
    this.frames = frames;
  }

  /**
   * Sends the upstream's reads to `to` from now on, holding at most SPLICE_HIGH_WATER in `to`'s
   * write buffer before pausing the upstream; ends `to` after the last batch at the upstream's
   * end. Counts each byte forwarded.
   */
  sendTo(to: Duplex, count: (n: number) => void): void {
    const from = this.socket;
    if (from === undefined) throw new Error('UpstreamReads.sendTo: no socket attached');
    this.to = to;
    this.count = count;
    // whatever the HTTP client left in the stream goes first
    for (let c = from.read() as Buffer | null; c !== null; c = from.read() as Buffer | null) {
      count(c.length);
      this.frames?.feed(c, 0, c.length);
      to.write(c);
    }
    to.on('drain', () => {
      if (from.isPaused()) from.resume();
    });
    from.once('end', () => {
      this.flush();
      if (!to.writableEnded) to.end();
    });
    // flowing, so that the end of the upstream is seen ('end' waits for a reader)
    from.resume();
  }

  private onRead(n: number): boolean {
    const to = this.to;
    const from = this.socket;
    if (to === undefined || from === undefined) {
      // the HTTP exchange: the parser gets a copy, and the same room takes the next read
      return from?.push(Buffer.from(this.batch.buf.subarray(this.used, this.used + n))) ?? true;
    }
    this.count(n);
    this.frames?.feed(this.batch.buf, this.used, n);
    this.used += n;
    if (this.size - this.used < this.minRoom) {
      this.flush();
      this.nextBatch();
    } else if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
    return true;
  }

  /**
   * Writes what was read since the last write, as a slice of the current batch, and pauses the
   * upstream once the client holds SPLICE_HIGH_WATER (pause() rather than a false return from
   * the read callback: 'drain' resumes only a paused stream).
   */
  flush(): void {
    const to = this.to;
    if (to === undefined || this.used === this.start) return;
    if (to.destroyed || to.writableEnded) {
      this.start = this.used; // nobody to send it to: the splice is ending
      return;
    }
    const batch = this.batch;
    batch.pending += 1;
    to.write(batch.buf.subarray(this.start, this.used), () => {
      batch.pending -= 1;
      this.reuse(batch);
    });
    this.start = this.used;
    if (to.writableLength >= SPLICE_HIGH_WATER) this.socket?.pause();
  }

  private nextBatch(): void {
    const full = this.batch;
    this.batch = this.newBatch();
    this.start = this.used = 0;
    this.reuse(full);
  }

  private newBatch(): Batch {
    return (
      spareBatches.get(this.size)?.pop() ?? {
        buf: Buffer.allocUnsafeSlow(this.size),
        pending: 0,
      }
    );
  }

  /** Gives a batch this reader has left behind to the spares once its writes are done. */
  private reuse(batch: Batch): void {
    if (batch === this.batch || batch.pending > 0) return;
    let spares = spareBatches.get(this.size);
    if (spares === undefined) spareBatches.set(this.size, (spares = []));
    if (spares.length < SPARE_BATCHES) spares.push(batch);
  }
}

/** What a hop holds for a slow reader before it stops reading from the writer. */
export const SPLICE_HIGH_WATER = 256 * 1024;

/**
 * Forwards `from` into `to` like `from.pipe(to)`, but writes what arrives in one event-loop turn
 * as one batch: `to` is corked on the turn's first chunk and uncorked in the check phase, so a TLS
 * socket gets one writev (one SSL_write and one socket write) instead of one per ≤ 16 KiB record
 * its peer's TLS layer hands us. Backpressure: `from` is paused once `to` holds SPLICE_HIGH_WATER
 * bytes and resumed on 'drain'; the end of `from` ends `to` after the last batch. (The client's
 * side of a hop, where keystrokes come from; the upstream's side is UpstreamReads.)
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

/** How long a side's pending output may go without draining, once its peer closed, before the hop gives up on the reader. */
export const SPLICE_DRAIN_IDLE_MS = 30_000;
/** How long a side may stay open once everything was written to it and its write side ended. */
export const SPLICE_CLOSE_GRACE_MS = 5_000;

/**
 * Forwards the client and the upstream into each other: the client's side with forward, the
 * upstream's with its UpstreamReads. A close on one side ends the other once its pending writes
 * are flushed (the last output and the status frame must arrive); an error destroys both.
 */
function splice(
  client: Duplex,
  upstream: Socket,
  reads: UpstreamReads,
  drainIdleMs: number,
  done: (up: number, down: number) => void,
  stop?: { signal: AbortSignal; message: (reason: unknown) => Buffer; frames: FrameTracker },
): void {
  for (const s of [client, upstream]) {
    (s as Partial<Socket>).setNoDelay?.(true);
    (s as Partial<Socket>).setTimeout?.(0);
  }
  let up = 0;
  let down = 0;
  forward(client, upstream, (n) => (up += n));
  reads.sendTo(client, (n) => (down += n));
  let closed = 0;
  const onStop = (): void => {
    if (closed > 0 || stop === undefined) return; // the session is ending by itself
    reads.flush(); // what was read goes first: the frame state is that of its end
    if (stop.frames.closing) {
      // the upstream's own close frame is on its way: the session ends as it would have
    } else if (stop.frames.between) {
      client.write(
        Buffer.concat([
          serverFrame(0x2, stop.message(stop.signal.reason)),
          serverFrame(0x8, closePayload(1001)),
        ]),
      );
    } else {
      client.destroy();
    }
    // the upstream's close ends the client once its pending writes are out
    upstream.destroy();
  };
  if (stop?.signal.aborted === true) setImmediate(onStop);
  else stop?.signal.addEventListener('abort', onStop, { once: true });
  const onClose = (other: Duplex) => (): void => {
    closed += 1;
    if (closed === 2) {
      stop?.signal.removeEventListener('abort', onStop);
      done(up, down);
      return;
    }
    // nothing more will be written to the side that closed: what it sent is not needed, and
    // unread input would make the kernel reset the connection when the other side goes
    if (other.isPaused()) other.resume();
    endAfterDrain(other, drainIdleMs);
  };
  const onError = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', onError);
  upstream.on('error', onError);
  client.once('close', onClose(upstream));
  upstream.once('close', onClose(client));
}

/**
 * Ends `s` after its pending writes and closes it once they are out: a slow reader gets
 * everything as long as it keeps reading (the tail carries the exit status); one that reads
 * nothing for `idleMs`, or a peer that keeps its side open CLOSE_GRACE after the end, is cut.
 * Progress shows as `writableLength` shrinking, one completed write (up to a batch) at a time.
 */
function endAfterDrain(s: Duplex, idleMs: number): void {
  if (!s.writableEnded) s.end();
  const step = Math.max(1, Math.min(1_000, idleMs / 4));
  let pending = s.writableLength;
  let idle = 0;
  const check = setInterval(() => {
    if (s.destroyed || s.writableFinished) {
      clearInterval(check);
      return;
    }
    if (s.writableLength < pending) {
      pending = s.writableLength;
      idle = 0;
    } else if ((idle += step) >= idleMs) {
      clearInterval(check);
      s.destroy();
    }
  }, step).unref();
  const grace = (): void => {
    setTimeout(() => s.destroy(), SPLICE_CLOSE_GRACE_MS).unref();
  };
  if (s.writableFinished) grace();
  else s.once('finish', grace);
}

/**
 * Follows the frames a WebSocket server sends (RFC 6455 §5.2), headers only: whether the bytes fed
 * so far end between messages, so that the hop may add one of its own.
 */
export class FrameTracker {
  // header bytes of the frame being read (at most 14), then payload bytes still to come
  private readonly header = Buffer.alloc(14);
  private headerLength = 0;
  private payloadLeft = 0;
  // a fragmented data message is open (its last frame had FIN clear)
  private fragmented = false;
  /** a close frame has started */
  closing = false;

  /** the bytes fed end at a message boundary, no close frame among them */
  get between(): boolean {
    return this.headerLength === 0 && this.payloadLeft === 0 && !this.fragmented && !this.closing;
  }

  feed(buf: Buffer, offset: number, length: number): void {
    let i = offset;
    const end = offset + length;
    while (i < end) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, end - i);
        this.payloadLeft -= n;
        i += n;
        continue;
      }
      this.header[this.headerLength++] = buf[i++]!;
      if (this.headerLength < 2) continue;
      const len7 = this.header[1]! & 0x7f;
      const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.header[1]! & 0x80 ? 4 : 0);
      if (this.headerLength < need) continue;
      const opcode = this.header[0]! & 0x0f;
      const fin = (this.header[0]! & 0x80) !== 0;
      if (opcode === 0x8) this.closing = true;
      // control frames (opcode ≥ 8) may come between the fragments of a data message
      if (opcode < 0x8) this.fragmented = !fin;
      this.payloadLeft =
        len7 === 126
          ? this.header.readUInt16BE(2)
          : len7 === 127
            ? Number(this.header.readBigUInt64BE(2))
            : len7;
      this.headerLength = 0;
    }
  }
}

/** One unmasked, final WebSocket frame (server to client) with `opcode` and `payload`. */
export function serverFrame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = Buffer.alloc(n < 126 ? 2 : n < 0x10000 ? 4 : 10);
  head[0] = 0x80 | opcode;
  if (n < 126) head[1] = n;
  else if (n < 0x10000) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

function closePayload(code: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return b;
}
