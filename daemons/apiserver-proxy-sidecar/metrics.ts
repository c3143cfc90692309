// The sidecar's Prometheus metrics (prom-client, on a registry of its own), and the optional
// loopback listener that serves them with /healthz and /readyz.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, Registry } from 'prom-client';

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
  listen: { host: string; port: number },
  ready: () => boolean,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(405, 'application/json', JSON.stringify({ error: 'method not allowed' }));
      return;
    }
    if (url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          send(200, metrics.registry.contentType, text);
        },
        (err: unknown) => {
          send(500, 'application/json', JSON.stringify({ error: String(err) }));
        },
      );
    } else if (url === '/healthz') {
      send(200, 'text/plain', 'ok\n');
    } else if (url === '/readyz') {
      if (ready()) send(200, 'text/plain', 'ok\n');
      else send(503, 'application/json', JSON.stringify({ error: 'no successful sync yet' }));
    } else {
      send(404, 'application/json', JSON.stringify({ error: `no such path ${url}` }));
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((cause: unknown) => {
    throw new Error(`listening for metrics on ${listen.host}:${listen.port}: ${String(cause)}`, {
      cause,
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}
