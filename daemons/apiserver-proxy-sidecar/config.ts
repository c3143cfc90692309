// Config of apiserver-proxy-sidecar: the original flags in snake_case, plus where its state and
// optional metrics listener live.
import { isIP } from 'node:net';
import { z } from 'zod';
import { absolutePath, duration, hostPort, ipAddress } from '../../shared/config/index.ts';

export const DEFAULT_CONFIG_PATH = '/etc/hostplane/apiserver-proxy-sidecar.toml';
export const DEFAULT_STATE_FILE = '/run/hostplane/apiserver-proxy-sidecar/state.json';

// Linux IFNAMSIZ is 16 with the NUL; '/', ':' and whitespace are refused by the kernel or by ip.
const interfaceName = z
  .string()
  .regex(
    /^[A-Za-z0-9_.-]{1,15}$/,
    'expected an interface name of 1-15 letters, digits, "_", "." or "-"',
  );

const loopbackListen = hostPort().refine(
  (hp) =>
    hp.host === 'localhost' ||
    hp.host === '::1' ||
    (isIP(hp.host) === 4 && hp.host.startsWith('127.')),
  { message: 'the metrics listener must be on a loopback address (127.0.0.0/8, ::1, localhost)' },
);

/** A key that takes one value or a list (the original flags took one). */
function oneOrMany<T extends z.ZodType>(list: T) {
  // a list of one, so that problems are reported against `key[0]` with the item's own message
  return z.preprocess((v) => (typeof v === 'string' ? [v] : v), list);
}

export const sidecarSchema = z.strictObject({
  /** addresses the proxy listens on: put on the interface, and covered by the rules */
  ip_address: oneOrMany(z.array(ipAddress()).min(1)),
  /** the cluster's `kubernetes` service address: put on the interface too (no rules) */
  kubernetes_service_ip_address: oneOrMany(z.array(ipAddress()).default([])),
  interface: interfaceName.default('lo'),
  port: z.number().int().min(1).max(65535).default(443),
  setup_iptables: z.boolean().default(false),
  cleanup: z.boolean().default(false),
  daemon: z.boolean().default(true),
  sync_interval: duration()
    .refine((ms) => ms >= 1000, { message: 'sync_interval must be at least 1s' })
    .default(60_000),
  /** what the daemon added (link, addresses, chains), so `--cleanup` removes exactly that */
  state_file: absolutePath().default(DEFAULT_STATE_FILE),
  /** optional loopback listener for /metrics, /healthz, /readyz */
  metrics_listen: loopbackListen.optional(),
});

export type SidecarConfig = z.output<typeof sidecarSchema>;
