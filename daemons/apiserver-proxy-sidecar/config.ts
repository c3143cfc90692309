// Config of apiserver-proxy-sidecar: the original flags in snake_case, plus where its state and
// optional metrics listener live.
import { isIP, SocketAddress } from 'node:net';
import { z } from 'zod';
import { absolutePath, duration, hostPort, ipAddress } from '../../shared/config/index.ts';

export const DEFAULT_CONFIG_PATH = '/etc/hostplane/apiserver-proxy-sidecar.toml';
export const DEFAULT_STATE_FILE = '/run/hostplane/apiserver-proxy-sidecar/state.json';

/** Why the kernel (dev_valid_name) or ip would refuse `name` as an interface name, or undefined. */
export function badInterfaceName(name: string): string | undefined {
  if (name === '') return 'is empty';
  // IFNAMSIZ is 16 with the NUL
  if (Buffer.byteLength(name) > 15) return 'is longer than 15 bytes';
  if (/[/\s]/.test(name)) return 'contains "/" or whitespace';
  if (name === '.' || name === '..') return 'is "." or ".."';
  // ':' is refused by ip (alias syntax); the rest keeps names safe in argv and logs
  if (!/^[A-Za-z0-9_.-]+$/.test(name))
    return 'has a character other than letters, digits, "_", "." or "-"';
  return undefined;
}

const interfaceName = z.string().superRefine((name, ctx) => {
  const why = badInterfaceName(name);
  if (why !== undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected an interface name the kernel accepts: ${JSON.stringify(name)} ${why}`,
    });
  }
});

/** Why `ip` cannot be an address the proxy listens on, or undefined when it can. */
export function unusableAddress(ip: string): string | undefined {
  if (ip.includes('%')) return 'zone ids ("%eth0") are not supported; give the address alone';
  const family = isIP(ip);
  if (family === 4) {
    const first = Number(ip.split('.')[0]);
    if (ip === '0.0.0.0') return 'the unspecified address 0.0.0.0 is not a host address';
    if (ip === '255.255.255.255')
      return 'the broadcast address 255.255.255.255 is not a host address';
    if (first >= 224 && first <= 239)
      return 'multicast addresses (224.0.0.0/4) are not host addresses';
  } else if (family === 6) {
    const canonical = new SocketAddress({ address: ip, family: 'ipv6' }).address;
    if (canonical === '::') return 'the unspecified address :: is not a host address';
    if (/^ff[0-9a-f]{2}:/.test(canonical)) {
      return 'multicast addresses (ff00::/8) are not host addresses';
    }
  }
  return undefined;
}

/** An IP address that can be put on an interface and listened on. */
const hostAddress = ipAddress().superRefine((ip, ctx) => {
  const why = unusableAddress(ip);
  if (why !== undefined) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(ip)}: ${why}` });
});

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
  ip_address: oneOrMany(z.array(hostAddress).min(1)),
  /** the cluster's `kubernetes` service address: put on the interface too (no rules) */
  kubernetes_service_ip_address: oneOrMany(z.array(hostAddress).default([])),
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
