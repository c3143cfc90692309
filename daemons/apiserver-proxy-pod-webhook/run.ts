// The webhook from config to stop: load the certificate, listen, reload certificates on file
// changes and SIGHUP, close on stop.
import type { Logger } from '../../shared/log/index.ts';
import { readCertificates, watchCertificates, type CertFiles } from './certs.ts';
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
  /** every certificate reload attempt, null when it worked (tests await it) */
  onCertificates?: (err: Error | null) => void;
}

/** Serves until `signal` aborts. */
export async function runWebhook(d: WebhookRunDeps): Promise<void> {
  const c = d.config;
  const files: CertFiles = {
    dir: c.cert_dir,
    cert: c.cert_name,
    key: c.key_name,
    clientCa: c.client_ca_name,
  };
  const web = await startWebhook({
    fqdn: c.apiserver_fqdn,
    log: d.log,
    tls: await readCertificates(files),
    requireClientCert: c.client_ca_name !== undefined,
    host: c.host,
    port: c.port,
  });
  const certs = watchCertificates(
    files,
    (tls) => {
      web.setCertificates(tls);
    },
    d.log,
    d.onCertificates,
  );
  // the listener's other settings need a restart; SIGHUP re-reads the certificate files
  d.onReload(() => certs.reload());
  d.onListening?.(web);
  const where = `${c.host === '' ? '*' : c.host}:${web.port}`;
  d.log.info({ listen: where, clientCa: c.client_ca_name !== undefined }, 'listening');
  d.ready(`serving on ${where}`);
  try {
    if (!d.signal.aborted) {
      await new Promise<void>((resolve) => {
        d.signal.addEventListener(
          'abort',
          () => {
            resolve();
          },
          { once: true },
        );
      });
    }
  } finally {
    certs.close();
    await web.close();
  }
}
