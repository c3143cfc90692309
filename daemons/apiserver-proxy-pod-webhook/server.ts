// The webhook's HTTPS server: one POST route for AdmissionReviews, /healthz and /readyz, bounded
// bodies and header timeouts, JSON errors with a status that means what it says.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpError, sendError, toHttpError } from '../../shared/http/errors.ts';
import {
  limitConnections,
  readBody,
  serverOptions,
  type ServerLimits,
} from '../../shared/http/server.ts';
import type { Logger } from '../../shared/log/index.ts';
import { serverContextOptions, type CertificateMaterial } from '../../shared/tls/index.ts';
import { admit, BadReviewError } from './mutate.ts';

export const WEBHOOK_PATH = '/webhook/pod-apiserver-env';
/** Largest AdmissionReview accepted: a Pod is at most ~1.5 MiB in etcd, the review adds little. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface WebhookServerOptions {
  fqdn: string;
  log: Logger;
  /** certificate and key; with `ca`, client certificates are required and verified against it */
  tls: CertificateMaterial;
  host: string;
  port: number;
  maxBodyBytes?: number;
  /** headers, request, handshake and first-request timeouts, connection cap (shared defaults) */
  limits?: ServerLimits;
}

/** A listening webhook. */
export interface WebhookServer {
  server: Server;
  port: number;
  /** new certificate (and client CA) for the handshakes from now on */
  setCertificates(tls: CertificateMaterial): void;
  close(): Promise<void>;
}

/** Starts the HTTPS listener; resolves once it accepts connections. */
export async function startWebhook(o: WebhookServerOptions): Promise<WebhookServer> {
  const handler = webhookHandler({
    fqdn: o.fqdn,
    log: o.log,
    maxBodyBytes: o.maxBodyBytes ?? MAX_BODY_BYTES,
  });
  const server = createServer(
    {
      ...serverOptions(o.limits),
      ...serverContextOptions(o.tls),
      // how often headersTimeout/requestTimeout are enforced (node's default is every 30 s)
      connectionsCheckingInterval: 1000,
    },
    handler,
  );
  limitConnections(server, o.limits);
  server.on('tlsClientError', (err) => {
    o.log.debug({ err: err.message }, 'tls handshake failed');
  });
  server.on('drop', (d?: { remoteAddress?: string }) => {
    o.log.debug({ remote: d?.remoteAddress }, 'connection refused: max_connections reached');
  });
  const port = await new Promise<number>((resolve, reject) => {
    const where = `${o.host === '' ? '*' : o.host}:${o.port}`;
    const onError = (err: Error): void => {
      reject(new Error(`listening on ${where}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    const done = (): void => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    };
    // no host: every address, IPv6 and IPv4
    if (o.host === '') server.listen(o.port, done);
    else server.listen(o.port, o.host, done);
  });
  return {
    server,
    port,
    setCertificates(tls) {
      server.setSecureContext(serverContextOptions(tls));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeIdleConnections();
        // requests in flight are short; a stuck one must not hold the stop up
        setTimeout(() => {
          server.closeAllConnections();
        }, 2000).unref();
      }),
  };
}

/** The request handler (exported for tests that drive it without TLS). */
export function webhookHandler(o: {
  fqdn: string;
  log: Logger;
  maxBodyBytes: number;
}): (req: IncomingMessage, res: ServerResponse) => void {
  const log = o.log.child({ component: 'webhook' });
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/healthz' || path === '/readyz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        reply(res, methodNotAllowed('GET, HEAD', req.method), true);
        return;
      }
      // ready = listening: the server only exists once its certificate loaded
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
      res.end('ok\n');
      return;
    }
    if (path !== WEBHOOK_PATH) {
      reply(res, new HttpError('NotFound', `no route for ${path ?? '/'}`), true);
      return;
    }
    if (req.method !== 'POST') {
      reply(res, methodNotAllowed('POST', req.method), true);
      return;
    }
    const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      reply(
        res,
        new HttpError(
          'UnsupportedMediaType',
          `content-type ${JSON.stringify(type)}: expected application/json`,
        ),
        true,
      );
      return;
    }
    readBody(req, o.maxBodyBytes).then(
      (body) => {
        let review: unknown;
        try {
          review = JSON.parse(body.toString('utf8'));
        } catch (err) {
          reply(
            res,
            new HttpError('BadRequest', `parsing AdmissionReview: ${(err as Error).message}`),
          );
          return;
        }
        try {
          const out = admit(review, o.fqdn);
          const json = JSON.stringify(out);
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(json),
          });
          res.end(json);
          log.debug(
            { uid: out.response.uid, patched: out.response.patch !== undefined },
            'admitted',
          );
        } catch (err) {
          if (err instanceof BadReviewError) {
            reply(res, new HttpError('BadRequest', `reading AdmissionReview: ${err.message}`));
          } else {
            log.error({ err: String(err) }, 'admitting failed');
            reply(res, toHttpError(err));
          }
        }
      },
      (err: unknown) => {
        const e = toHttpError(err);
        // the rest of an oversized body is never read: close instead of draining it
        reply(
          res,
          e.reason === 'PayloadTooLarge'
            ? new HttpError(e.reason, e.message, { headers: { connection: 'close' }, cause: err })
            : e,
        );
      },
    );
  };
}

/** Answers with `err`; when the request body was not read, the connection closes after it. */
function reply(res: ServerResponse, err: HttpError, bodyUnread = false): void {
  if (bodyUnread && hasBody(res.req)) res.setHeader('connection', 'close');
  sendError(res, err);
}

function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  return (len !== undefined && len !== '0') || req.headers['transfer-encoding'] !== undefined;
}

function methodNotAllowed(allow: string, method: string | undefined): HttpError {
  return new HttpError('MethodNotAllowed', `method ${method ?? '?'} not allowed: use ${allow}`, {
    headers: { allow },
  });
}
