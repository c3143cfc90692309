// The sidecar's Prometheus metrics (prom-client, on a registry of its own), and the optional
// loopback listener that serves them with /healthz and /readyz.
import { createServer, type Server } from 'node:http';
import { Counter, Histogram, Registry } from 'prom-client';
import { HttpError, sendError, toHttpError } from '../../shared/http/errors.ts';
import { handleHealth, listen, requestUrl, serverOptions } from '../../shared/http/server.ts';

export type RepairKind = 'link' | 'address' | 'rules';
export type ErrorKind = 'read' | 'link' | 'address' | 'rules' | 'state' | 'watch';

/** The counters and histogram the sync loop updates. */
export interface SidecarMetrics {
  registry: Registry;
  syncs: Counter<'result'>;
  repairs: Counter<'kind'>;
  errors: Counter<'kind'>;
  syncDuration: Histogram;
}

export function createSidecarMetrics(): SidecarMetrics {
  const registry = new Registry();
  return {
    registry,
    syncs: new Counter({
      name: 'apiserver_proxy_sidecar_syncs_total',
      help: 'Syncs of addresses and rules, by result (ok or error).',
      labelNames: ['result'],
      registers: [registry],
    }),
    repairs: new Counter({
      name: 'apiserver_proxy_sidecar_repairs_total',
      help: 'Changes a sync made because the host drifted, by kind (link, address, rules).',
      labelNames: ['kind'],
      registers: [registry],
    }),
    errors: new Counter({
      name: 'apiserver_proxy_sidecar_errors_total',
      help: 'Failures, by kind (read, link, address, rules, state, watch).',
      labelNames: ['kind'],
      registers: [registry],
    }),
    syncDuration: new Histogram({
      name: 'apiserver_proxy_sidecar_sync_duration_seconds',
      help: 'Wall time of one sync.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}

/** A listening metrics server; `close()` ends it and its keep-alive connections. */
export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Serves /metrics, /healthz (process alive) and /readyz (`ready()` true) on host:port. */
export async function serveMetrics(
  metrics: SidecarMetrics,
  at: { host: string; port: number },
  ready: () => boolean,
): Promise<MetricsServer> {
  const server: Server = createServer(serverOptions(), (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(
        res,
        new HttpError('MethodNotAllowed', `method ${req.method ?? '?'} not allowed: use GET`, {
          headers: { allow: 'GET, HEAD' },
        }),
      );
      return;
    }
    if (handleHealth(req, res, ready)) return;
    try {
      const path = requestUrl(req).pathname;
      if (path !== '/metrics') throw new HttpError('NotFound', `no route for ${path}`);
    } catch (err) {
      sendError(res, toHttpError(err));
      return;
    }
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, {
          'content-type': metrics.registry.contentType,
          'content-length': Buffer.byteLength(text),
        });
        res.end(text);
      },
      (err: unknown) => {
        sendError(res, toHttpError(err));
      },
    );
  });
  const addr = await listen(server, at.host, at.port);
  return {
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}
