// /etc/hostplane/machinepoollet.toml: the TLS listener, who may call it, and the runtime socket.
import { z } from 'zod';
import { absolutePath, duration, hostPort, section } from '../../shared/config/index.ts';
import { policyRuleSchema } from '../../shared/http/policy.ts';

export const configSchema = z.strictObject({
  /** where exec-gateway reaches this poollet (its pool's daemon endpoint port) */
  listen: hostPort().prefault('0.0.0.0:20250'),
  tls: z.strictObject({
    /** CA that signs the certificates of callers (exec-gateway, operators) */
    ca_file: absolutePath(),
    cert_file: absolutePath(),
    key_file: absolutePath(),
  }),
  auth: section({
    /** certificate CNs whose x-remote-user/x-remote-group headers name the end user */
    trusted_proxies: z.array(z.string().min(1)).default(['exec-gateway']),
  }),
  /** who may exec where; a caller no rule allows gets 403 */
  policy: z.array(policyRuleSchema).default([]),
  runtime: section({
    socket: absolutePath().prefault('/run/hostplane/machinebroker.sock'),
    timeout: duration().prefault('5s'),
  }),
  proxy: section({
    /** how long the runtime's streaming server may take to answer an upgrade */
    timeout: duration().prefault('10s'),
  }),
});
export type PoolletConfig = z.output<typeof configSchema>;
