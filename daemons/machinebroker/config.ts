// /etc/hostplane/machinebroker.toml: the runtime socket, the streaming server, and the machines
// with their console targets.
import { isIP } from 'node:net';
import { z } from 'zod';
import { absolutePath, duration, hostPort, section } from '../../shared/config/index.ts';

const name = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'expected an RFC 1123 name');

const sandboxTarget = z.strictObject({
  type: z.literal('sandbox'),
  /** the program and its arguments, run as PID 2 of new PID, mount and network namespaces */
  command: z.array(z.string().min(1)).min(1).default(['/bin/sh']),
});

const serialTarget = z.strictObject({
  type: z.literal('serial'),
  /** the console's unix socket (QEMU `-serial unix:PATH,server`) */
  socket: absolutePath(),
});

const upstreamTarget = z.strictObject({
  type: z.literal('upstream'),
  /** the other exec-gateway, `https://host:port` */
  url: z.url({ protocol: /^https$/ }),
  /** the machine's namespace and name there; default the same as here */
  namespace: name.optional(),
  name: name.optional(),
  ca_file: absolutePath(),
  cert_file: absolutePath(),
  key_file: absolutePath(),
  timeout: duration().prefault('10s'),
});

export const targetSchema = z.discriminatedUnion('type', [
  sandboxTarget,
  serialTarget,
  upstreamTarget,
]);
export type Target = z.output<typeof targetSchema>;

const machineSchema = z.strictObject({
  /** the runtime's id of the machine (what Exec takes) */
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'expected an id of [A-Za-z0-9._-]'),
  namespace: name,
  name,
  target: targetSchema,
});

const loopback = hostPort().refine(
  (hp) =>
    hp.host === 'localhost' ||
    hp.host === '::1' ||
    (isIP(hp.host) === 4 && hp.host.startsWith('127.')),
  { message: 'the streaming server listens on loopback only (127.0.0.0/8, ::1 or localhost)' },
);

export const configSchema = z
  .strictObject({
    runtime: section({
      /** the gRPC unix socket the machinepoollet calls (mode 0660) */
      socket: absolutePath().prefault('/run/hostplane/machinebroker.sock'),
    }),
    streaming: section({
      listen: loopback.prefault('127.0.0.1:0'),
      token_ttl: duration().prefault('1m'),
      max_in_flight: z.number().int().min(1).max(1_000_000).default(1000),
    }),
    sandbox: section({
      /** util-linux unshare; default found in /usr/bin etc. */
      unshare: absolutePath().optional(),
      /** hostplane-nsinit; default the installed one */
      nsinit: absolutePath().optional(),
      term: z.string().default('xterm-256color'),
    }),
    machines: z.array(machineSchema).default([]),
  })
  .superRefine((c, ctx) => {
    const ids = new Set<string>();
    const names = new Set<string>();
    c.machines.forEach((m, i) => {
      if (ids.has(m.id)) {
        ctx.addIssue({
          code: 'custom',
          path: ['machines', i, 'id'],
          message: `duplicate machine id ${m.id}`,
        });
      }
      const nn = `${m.namespace}/${m.name}`;
      if (names.has(nn)) {
        ctx.addIssue({
          code: 'custom',
          path: ['machines', i, 'name'],
          message: `duplicate machine ${nn}`,
        });
      }
      ids.add(m.id);
      names.add(nn);
    });
  });
export type BrokerConfig = z.output<typeof configSchema>;
export type MachineConfig = BrokerConfig['machines'][number];
