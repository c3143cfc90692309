// cu-thor-server's configuration (/etc/hostplane/cu-thor-server.toml): the schema, with every
// default inside it. etc/hostplane/cu-thor-server.toml lists the same keys, commented out.
import { z } from 'zod';
import { absolutePath, byteSize, duration, hostPort, section } from '../../shared/config/index.ts';
import type { JobLimits } from './types.ts';

export const DEFAULT_CONFIG_PATH = '/etc/hostplane/cu-thor-server.toml';
const ETC = '/etc/hostplane/cu-thor-server';

const positiveInt = z.number().int().positive();
const positiveSize = byteSize().refine((n) => n > 0, { message: 'must be more than 0 bytes' });

const ioLimit = z
  .strictObject({
    /** "/dev/vda" or "MAJ:MIN". */
    device: z.string().min(1),
    rbps: positiveSize.optional(),
    wbps: positiveSize.optional(),
  })
  .refine((io) => io.rbps !== undefined || io.wbps !== undefined, {
    message: 'set rbps, wbps or both',
  });

/**
 * One limit: a value, or "max" for none (cgroup's own word). Defaults are per key, so setting one
 * key of a table keeps the defaults of the others.
 */
function limit<T extends z.ZodType<number>>(inner: T, dflt?: z.input<T>) {
  const one = z.union([z.literal('max'), inner]).transform((v) => (v === 'max' ? undefined : v));
  // the generic input type of `inner` does not narrow through the union; dflt is one of its inputs
  return dflt === undefined ? one.optional() : one.prefault(dflt as z.input<typeof one>);
}

const cpuPercent = z.number().positive().max(100_000);

function limitSet(d: { cpu_percent?: number; memory_max?: string; pids_max?: number }) {
  return section({
    /** percent of one cpu: 150 = one and a half cpus → cpu.max. */
    cpu_percent: limit(cpuPercent, d.cpu_percent),
    memory_max: limit(positiveSize, d.memory_max),
    memory_high: limit(positiveSize),
    pids_max: limit(positiveInt, d.pids_max),
    io: z.array(ioLimit).default([]),
  });
}

export const configSchema = z.strictObject({
  listen: hostPort().prefault('0.0.0.0:50051'),
  state_dir: absolutePath().prefault('/var/lib/hostplane/cu-thor-server'),
  max_concurrent: positiveInt.default(64),
  /** SIGTERM to SIGKILL; "0s" kills at once */
  stop_grace: duration({ min: 0 }).prefault('10s'),
  max_output_bytes: positiveSize.prefault('128MiB'),
  /** open GetOutStream calls of all clients together; past it RESOURCE_EXHAUSTED */
  max_output_streams: positiveInt.default(256),
  /** open GetOutStream calls of one client (certificate CN) */
  max_output_streams_per_client: positiveInt.default(128),
  tls: section({
    ca_file: absolutePath().prefault(`${ETC}/ca.crt`),
    cert_file: absolutePath().prefault(`${ETC}/server.crt`),
    key_file: absolutePath().prefault(`${ETC}/server.key`),
  }),
  cgroup: section({ require: z.boolean().default(true) }),
  limits: section({
    /** what a job gets for each limit its request does not set. */
    default: limitSet({ cpu_percent: 100, memory_max: '512MiB', pids_max: 1024 }),
    /** the most a request may ask for. */
    max: limitSet({ cpu_percent: 400, memory_max: '4GiB', pids_max: 8192 }),
    /** the sum of all jobs together (their common parent cgroup). */
    total: limitSet({}),
  }),
});

export type Config = z.output<typeof configSchema>;
type LimitSet = Config['limits']['default'];

/** Time the drain needs on top of stop_grace: ending streams, the gRPC shutdown, metadata. */
export const DRAIN_MARGIN_MS = 10_000;

/**
 * How long the daemon waits for its drain after SIGTERM: stop_grace (jobs get SIGTERM, SIGKILL
 * after it) plus DRAIN_MARGIN_MS. The unit's TimeoutStopSec must be above this (30 s covers the
 * default stop_grace of 10 s; raise it with stop_grace, e.g. stop_grace + 20 s).
 */
export function drainTimeoutMs(config: Pick<Config, 'stop_grace'>): number {
  return config.stop_grace + DRAIN_MARGIN_MS;
}

/** `listen` as grpc-js binds it ("[::1]:50051" for IPv6). */
export function listenAddress(listen: Config['listen']): string {
  return listen.host.includes(':')
    ? `[${listen.host}]:${listen.port}`
    : `${listen.host}:${listen.port}`;
}

/** A `[limits.*]` table as the executor takes it. */
export function toJobLimits(l: LimitSet): JobLimits {
  const out: JobLimits = {};
  if (l.cpu_percent !== undefined) out.cpuPercent = l.cpu_percent;
  if (l.memory_max !== undefined) out.memoryMaxBytes = l.memory_max;
  if (l.memory_high !== undefined) out.memoryHighBytes = l.memory_high;
  if (l.pids_max !== undefined) out.pidsMax = l.pids_max;
  if (l.io.length > 0) {
    out.io = l.io.map((d) => ({
      device: d.device,
      ...(d.rbps === undefined ? {} : { rbps: d.rbps }),
      ...(d.wbps === undefined ? {} : { wbps: d.wbps }),
    }));
  }
  return out;
}
