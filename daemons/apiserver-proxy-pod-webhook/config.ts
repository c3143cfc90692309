// Config of apiserver-proxy-pod-webhook: the original flags in snake_case.
import { isIP } from 'node:net';
import { z } from 'zod';
import { absolutePath, fqdn } from '../../shared/config/index.ts';
import { DEFAULT_MAX_CONNECTIONS } from '../../shared/http/server.ts';

export const DEFAULT_CONFIG_PATH = '/etc/hostplane/apiserver-proxy-pod-webhook.toml';
export const DEFAULT_CERT_DIR = '/etc/hostplane/apiserver-proxy-pod-webhook';

const fileName = z
  .string()
  .regex(/^[^/\0]+$/, 'expected a file name inside cert_dir, without "/"')
  .refine((s) => s !== '.' && s !== '..', 'expected a file name inside cert_dir');

export const webhookSchema = z.strictObject({
  /**
   * The API server's FQDN put into pods. Kept as written: a trailing dot makes it absolute, so
   * pods (ndots:5) resolve it without walking their search domains first.
   */
  apiserver_fqdn: z.string().superRefine((s, ctx) => {
    const r = fqdn().safeParse(s);
    if (!r.success)
      ctx.addIssue({ code: 'custom', message: r.error.issues[0]?.message ?? 'invalid' });
  }),
  cert_dir: absolutePath().default(DEFAULT_CERT_DIR),
  cert_name: fileName.default('tls.crt'),
  key_name: fileName.default('tls.key'),
  /** when set, clients must present a certificate signed by this CA */
  client_ca_name: fileName.optional(),
  /** address to listen on; "" is every address */
  host: z
    .string()
    .refine((s) => s === '' || isIP(s) !== 0, 'expected "" (every address) or an IP address')
    .default(''),
  port: z.number().int().min(0).max(65535).default(9443),
  /** open connections at most; more are closed as they come */
  max_connections: z.number().int().min(1).default(DEFAULT_MAX_CONNECTIONS),
});

export type WebhookConfig = z.output<typeof webhookSchema>;
