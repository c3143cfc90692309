// /etc/hostplane/webterminal.toml: the HTTPS listener, how users are identified, session limits,
// the CSP allowlist and the targets users may open terminals to.
import { isIP } from 'node:net';
import { z } from 'zod';
import { absolutePath, byteSize, duration, hostPort, section } from '../../shared/config/index.ts';

const targetName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'expected a lowercase name of [a-z0-9-]');

const common = {
  name: targetName,
  /** what the target picker shows */
  title: z.string().min(1).optional(),
  /** only members of one of these groups may open it (the seed's "operator only"); empty = everyone */
  groups: z.array(z.string().min(1)).default([]),
};

/** One cgroup limit: a value, or "max" (cgroup's own word) for none, read as null. */
function limit<T extends z.ZodType<number>>(inner: T) {
  return z.union([z.literal('max'), inner]).transform((v) => (v === 'max' ? null : v));
}

const positiveSize = byteSize().refine((n) => n > 0, { message: 'must be more than 0 bytes' });

/** The limits of a session's cgroup, named as in cu-thor-server.toml. */
const limitKeys = {
  /** percent of ONE cpu: 150 = one and a half cpus → cpu.max */
  cpu_percent: limit(z.number().positive().max(100_000)),
  /** memory.max */
  memory_max: limit(positiveSize),
  /** memory.high */
  memory_high: limit(positiveSize),
  /** pids.max */
  pids_max: limit(z.number().int().positive()),
};

/** A target's own limits: each key set here replaces the [sandbox.limits] one. */
const targetLimits = z.strictObject({
  cpu_percent: limitKeys.cpu_percent.optional(),
  memory_max: limitKeys.memory_max.optional(),
  memory_high: limitKeys.memory_high.optional(),
  pids_max: limitKeys.pids_max.optional(),
});
export type TargetLimits = z.output<typeof targetLimits>;

const sandboxTarget = z.strictObject({
  ...common,
  type: z.literal('sandbox'),
  /** the program and its arguments, PID 2 of new PID, mount and network namespaces */
  command: z.array(z.string().min(1)).min(1).default(['/bin/sh', '-i']),
  /** the unprivileged account the command runs as (setpriv); empty keeps the daemon's user */
  user: z.string().default('nobody'),
  /** cgroup limits of each session of this target, over [sandbox.limits] key by key */
  limits: targetLimits.default({}),
});

const machineTarget = z.strictObject({
  ...common,
  type: z.literal('machine'),
  /** exec-gateway, `https://host:port` */
  gateway: z.url({ protocol: /^https$/ }),
  namespace: targetName,
  machine: targetName,
  /** CA that signed the gateway's certificate */
  ca_file: absolutePath(),
  /** CA (certificate and key) the per-session client certificates are issued from */
  session_ca_cert_file: absolutePath(),
  session_ca_key_file: absolutePath(),
});

export const targetSchema = z.discriminatedUnion('type', [sandboxTarget, machineTarget]);
export type TargetConfig = z.output<typeof targetSchema>;

const hex64 = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex SHA-256 (64 characters)');

const tokenSchema = z.strictObject({
  user: z.string().min(1),
  groups: z.array(z.string().min(1)).default([]),
  /** sha256 of the bearer token, lowercase hex (`printf %s TOKEN | sha256sum`) */
  sha256: hex64,
});

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

export const configSchema = z
  .strictObject({
    listen: hostPort().prefault('127.0.0.1:8443'),
    /**
     * the origins browsers use (`https://term.example.com`); default with [tls]: https:// and the
     * Host header; required without [tls] (the proxy's origin is not the daemon's)
     */
    public_origins: z.array(z.url({ protocol: /^https?$/ })).default([]),
    /** absent: plain HTTP, allowed only on loopback behind a TLS-terminating proxy */
    tls: z
      .strictObject({
        cert_file: absolutePath(),
        key_file: absolutePath(),
      })
      .optional(),
    auth: section({
      /** verify client certificates with this CA: CN = user, O = groups */
      client_ca_file: absolutePath().optional(),
      /** client certificate CNs of reverse proxies allowed to set X-Remote-User/X-Remote-Group */
      trusted_proxies: z.array(z.string().min(1)).default([]),
      /** bearer tokens, stored hashed; a browser exchanges one for a session cookie at login */
      tokens: z.array(tokenSchema).default([]),
      /** lifetime of a browser login */
      cookie_ttl: duration().prefault('12h'),
    }),
    sessions: section({
      /** a session without heartbeat for this long is cleaned up */
      ttl: duration().prefault('5m'),
      /** GET /api/terminals/:id waits at most this long for the session to be ready */
      ready_timeout: duration().prefault('10s'),
      /** live sessions per user */
      max_per_user: z.number().int().min(1).max(1000).default(5),
      /** live sessions of all users together (each a shell in its own cgroup) */
      max_total: z.number().int().min(1).max(100_000).default(100),
      /** an attach token is good for this long, once */
      attach_token_ttl: duration().prefault('30s'),
      /** output kept for a re-attach after a reload */
      scrollback: z
        .number()
        .int()
        .min(0)
        .max(16 << 20)
        .default(256 * 1024),
      /** live attachments (browser tabs, viewers) per session; one more is answered 429 */
      max_attachments: z.number().int().min(1).max(1000).default(8),
      /** how often expired sessions are looked for */
      sweep_interval: duration().prefault('5s'),
    }),
    sandbox: section({
      unshare: absolutePath().optional(),
      nsinit: absolutePath().optional(),
      term: z.string().default('xterm-256color'),
      /** what every sandbox session's cgroup gets unless its target says otherwise */
      limits: section({
        cpu_percent: limitKeys.cpu_percent.prefault(100),
        memory_max: limitKeys.memory_max.prefault('512MiB'),
        memory_high: limitKeys.memory_high.prefault('max'),
        pids_max: limitKeys.pids_max.prefault(512),
      }),
    }),
    /** require: refuse to start without cgroup v2 (cpu, memory, pids); false: namespaces only */
    cgroup: section({ require: z.boolean().default(true) }),
    /** where the bundled UI lives (index.html, app.js, app.css) */
    ui_dir: absolutePath().prefault('/usr/share/hostplane/webterminal/ui'),
    /** extra hosts the page may connect to (CSP connect-src as wss:// and https://) */
    allowed_host_source_list: z
      .array(
        z.string().regex(/^[A-Za-z0-9*.:[\]-]+$/, 'expected a host source like "*.example.com"'),
      )
      .default([]),
    targets: z.array(targetSchema).default([]),
  })
  .superRefine((c, ctx) => {
    if (c.tls === undefined && !isLoopback(c.listen.host)) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls'],
        message: `plain HTTP is allowed only on loopback; listen ${c.listen.host} needs [tls]`,
      });
    }
    if (c.tls === undefined && c.public_origins.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['public_origins'],
        message:
          'plain HTTP (no [tls]) runs behind a TLS-terminating proxy, whose origin (https://HOST) ' +
          'the request does not show; it needs public_origins, e.g. ["https://term.example.com"]',
      });
    }
    if (c.auth.client_ca_file !== undefined && c.tls === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['auth', 'client_ca_file'],
        message: 'client certificates need [tls]',
      });
    }
    const seen = new Set<string>();
    c.targets.forEach((t, i) => {
      if (seen.has(t.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['targets', i, 'name'],
          message: `duplicate target ${t.name}`,
        });
      }
      seen.add(t.name);
    });
  });
export type WebterminalConfig = z.output<typeof configSchema>;
/** Limits of one session's cgroup; null = no limit ("max"). */
export type SessionLimits = WebterminalConfig['sandbox']['limits'];

/**
 * Keys whose change a reload cannot apply (the listener, HTTP vs HTTPS, whether client
 * certificates are requested, the sandbox binaries, cgroup mode): their paths, for the refusal.
 */
export function restartOnlyChanges(a: WebterminalConfig, b: WebterminalConfig): string[] {
  const out: string[] = [];
  if (a.listen.host !== b.listen.host || a.listen.port !== b.listen.port) out.push('listen');
  if ((a.tls === undefined) !== (b.tls === undefined)) out.push('[tls] (HTTP vs HTTPS)');
  if ((a.auth.client_ca_file === undefined) !== (b.auth.client_ca_file === undefined)) {
    out.push('auth.client_ca_file (set vs unset)');
  }
  for (const k of ['unshare', 'nsinit', 'term'] as const) {
    if (a.sandbox[k] !== b.sandbox[k]) out.push(`sandbox.${k}`);
  }
  if (a.cgroup.require !== b.cgroup.require) out.push('cgroup.require');
  return out;
}
