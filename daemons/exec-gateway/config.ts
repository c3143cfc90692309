// /etc/hostplane/exec-gateway.toml: the user-facing TLS listener, the policy, the client
// certificate toward machinepoollets, and the machines and pools (the TOML registry).
import { z } from 'zod';
import { absolutePath, duration, hostPort, section } from '../../shared/config/index.ts';
import { policyRuleSchema } from '../../shared/http/policy.ts';

export const ADDRESS_TYPES = [
  'Hostname',
  'InternalDNS',
  'InternalIP',
  'ExternalDNS',
  'ExternalIP',
] as const;
export type AddressType = (typeof ADDRESS_TYPES)[number];

const name = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'expected an RFC 1123 name');
const tlsFiles = z.strictObject({
  ca_file: absolutePath(),
  cert_file: absolutePath(),
  key_file: absolutePath(),
});

const poolSchema = z.strictObject({
  name,
  /** the machinepoollet's port (DaemonEndpoints.MachinepoolletEndpoint.Port) */
  port: z.number().int().min(1).max(65535),
  addresses: z
    .array(z.strictObject({ type: z.enum(ADDRESS_TYPES), address: z.string().min(1) }))
    .default([]),
});

const machineSchema = z.strictObject({
  namespace: name,
  name,
  /** the machine pool the machine is scheduled on; absent: not scheduled yet */
  pool: name.optional(),
});

export const configSchema = z
  .strictObject({
    listen: hostPort().prefault('0.0.0.0:8443'),
    /** which pool address to dial, in order of preference */
    preferred_address_types: z
      .array(z.enum(ADDRESS_TYPES))
      .min(1)
      .default([...ADDRESS_TYPES]),
    /** server certificate; `ca_file` signs the users' client certificates (CN user, O groups) */
    tls: tlsFiles,
    /** the gateway's client certificate toward poollets; `ca_file` signs the poollets' certificates */
    upstream_tls: tlsFiles,
    proxy: section({ timeout: duration().prefault('10s') }),
    policy: z.array(policyRuleSchema).default([]),
    pools: z.array(poolSchema).default([]),
    machines: z.array(machineSchema).default([]),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.pools.forEach((p, i) => {
      if (seen.has(p.name))
        ctx.addIssue({
          code: 'custom',
          path: ['pools', i, 'name'],
          message: `duplicate pool ${p.name}`,
        });
      seen.add(p.name);
    });
    const machines = new Set<string>();
    c.machines.forEach((m, i) => {
      const nn = `${m.namespace}/${m.name}`;
      if (machines.has(nn))
        ctx.addIssue({
          code: 'custom',
          path: ['machines', i, 'name'],
          message: `duplicate machine ${nn}`,
        });
      machines.add(nn);
    });
  });
export type GatewayConfig = z.output<typeof configSchema>;
