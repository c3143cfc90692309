// The webhook from config to stop: load the certificate, listen, take new certificates when the
// files change (a secret volume's symlink swap) and on SIGHUP, close on stop.
import path from 'node:path';
import { untilAborted } from '../../shared/daemon/index.ts';
import type { Logger } from '../../shared/log/index.ts';
import { watchCertificates, type CertificateFiles } from '../../shared/tls/index.ts';
import type { WebhookConfig } from './config.ts';
import { startWebhook, type WebhookServer } from './server.ts';

export interface WebhookRunDeps {
  config: WebhookConfig;
  log: Logger;
  signal: AbortSignal;
  ready(status: string): void;
  /** SIGHUP hook (shared/daemon's ctx.onReload) */
  onReload(fn: (next: WebhookConfig) => Promise<void>): void;
  /** called with the listening server (tests read the port) */
  onListening?: (server: WebhookServer) => void;
  /** called after new certificates were taken (tests await it) */
  onCertificates?: () => void;
}

/** Serves until `signal` aborts. */
export async function runWebhook(d: WebhookRunDeps): Promise<void> {
  const c = d.config;
  const files: CertificateFiles = {
    cert: path.join(c.cert_dir, c.cert_name),
    key: path.join(c.cert_dir, c.key_name),
    ...(c.client_ca_name === undefined ? {} : { ca: path.join(c.cert_dir, c.client_ca_name) }),
  };
  let web: WebhookServer | undefined;
  const certs = await watchCertificates({
    files,
    log: d.log,
    onChange: (material) => {
      web?.setCertificates(material);
      d.onCertificates?.();
    },
  });
  try {
    web = await startWebhook({
      fqdn: c.apiserver_fqdn,
      log: d.log,
      tls: certs.current(),
      host: c.host,
      port: c.port,
      limits: { maxConnections: c.max_connections },
    });
    // the listener's other settings need a restart; SIGHUP re-reads the certificate files
    d.onReload(async () => {
      await certs.reload();
    });
    d.onListening?.(web);
    const where = `${c.host === '' ? '*' : c.host}:${web.port}`;
    d.log.info({ listen: where, clientCa: c.client_ca_name !== undefined }, 'listening');
    d.ready(`serving on ${where}`);
    await untilAborted(d.signal);
  } finally {
    certs.close();
    await web?.close();
  }
}
