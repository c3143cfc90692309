// Execution metadata on disk: <stateDir>/jobs/<id>/meta.json, replaced atomically (tmp + fsync +
// rename) at start and at end, so a restart finds every job and its output.
import { mkdirSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../../shared/log/index.ts';
import type { ExecutionInfo, IoLimit, JobLimits } from './types.ts';

const META = 'meta.json';
const OUTPUT = 'output';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Enough to find a job's process again after a restart (pid + its start time, against reuse). */
export interface HostRef {
  /** host PID of the `unshare` process that owns the job's namespaces. */
  pid: number;
  /** field 22 of /proc/<pid>/stat (clock ticks since boot), or null when unknown. */
  startTime: string | null;
  /** cgroup of the job relative to the cgroup root, when it had one. */
  cgroup: string | null;
}

/** One job as persisted. */
export interface JobRecord {
  info: ExecutionInfo;
  host: HostRef | null;
}

const ioSchema = z.object({
  device: z.string(),
  rbps: z.number().optional(),
  wbps: z.number().optional(),
});
const limitsSchema = z.object({
  cpuPercent: z.number().optional(),
  memoryMaxBytes: z.number().optional(),
  memoryHighBytes: z.number().optional(),
  pidsMax: z.number().optional(),
  io: z.array(ioSchema).optional(),
});
const recordSchema = z.object({
  version: z.literal(1),
  id: z.string().regex(UUID),
  command: z.string(),
  args: z.array(z.string()),
  owner: z.string(),
  status: z.enum([
    'running',
    'exited',
    'stopped',
    'killed',
    'oom_killed',
    'failed_to_start',
    'lost',
  ]),
  exitCode: z.number().nullable(),
  signal: z.string().nullable(),
  reason: z.string().nullable(),
  startedAt: z.iso.datetime(),
  endedAt: z.iso.datetime().nullable(),
  limits: limitsSchema,
  usage: z.object({ cpuUsec: z.number().nullable(), memoryPeakBytes: z.number().nullable() }),
  outputBytes: z.number(),
  outputTruncated: z.boolean(),
  host: z
    .object({ pid: z.number(), startTime: z.string().nullable(), cgroup: z.string().nullable() })
    .nullable(),
});

/** The JSON text of a record (pure; dates as ISO strings). */
export function encodeRecord(rec: JobRecord): string {
  const { info } = rec;
  return (
    JSON.stringify(
      {
        version: 1,
        ...info,
        startedAt: info.startedAt.toISOString(),
        endedAt: info.endedAt?.toISOString() ?? null,
        host: rec.host,
      },
      null,
      2,
    ) + '\n'
  );
}

/** Parses a meta.json text; throws with the reason when it is not a valid record. */
export function decodeRecord(text: string): JobRecord {
  const r = recordSchema.parse(JSON.parse(text));
  const limits = toLimits(r.limits);
  const info: ExecutionInfo = {
    id: r.id,
    command: r.command,
    args: r.args,
    owner: r.owner,
    status: r.status,
    exitCode: r.exitCode,
    signal: r.signal,
    reason: r.reason,
    startedAt: new Date(r.startedAt),
    endedAt: r.endedAt === null ? null : new Date(r.endedAt),
    limits,
    usage: r.usage,
    outputBytes: r.outputBytes,
    outputTruncated: r.outputTruncated,
  };
  return { info, host: r.host };
}

// zod yields `key: undefined` for absent optionals, which exactOptionalPropertyTypes rejects.
function toLimits(l: z.infer<typeof limitsSchema>): JobLimits {
  const out: JobLimits = {};
  if (l.cpuPercent !== undefined) out.cpuPercent = l.cpuPercent;
  if (l.memoryMaxBytes !== undefined) out.memoryMaxBytes = l.memoryMaxBytes;
  if (l.memoryHighBytes !== undefined) out.memoryHighBytes = l.memoryHighBytes;
  if (l.pidsMax !== undefined) out.pidsMax = l.pidsMax;
  if (l.io !== undefined) {
    out.io = l.io.map((e) => {
      const io: IoLimit = { device: e.device };
      if (e.rbps !== undefined) io.rbps = e.rbps;
      if (e.wbps !== undefined) io.wbps = e.wbps;
      return io;
    });
  }
  return out;
}

/** Metadata and output files of all jobs under `<stateDir>/jobs`. */
export class JobStore {
  readonly jobsDir: string;
  readonly #log: Logger;
  readonly #chains = new Map<string, Promise<void>>();

  constructor(stateDir: string, log: Logger) {
    this.jobsDir = join(stateDir, 'jobs');
    this.#log = log;
  }

  /** Creates the jobs directory (0700: outputs may hold secrets). */
  async init(): Promise<void> {
    try {
      await mkdir(this.jobsDir, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw new Error(`creating state directory ${this.jobsDir}: ${(cause as Error).message}`, {
        cause,
      });
    }
  }

  jobDir(id: string): string {
    return join(this.jobsDir, id);
  }

  outputPath(id: string): string {
    return join(this.jobsDir, id, OUTPUT);
  }

  metaPath(id: string): string {
    return join(this.jobsDir, id, META);
  }

  /** Creates a job's directory; synchronous because it is on the start path and takes µs. */
  createJobDir(id: string): void {
    try {
      mkdirSync(this.jobDir(id), { mode: 0o700 });
    } catch (cause) {
      throw new Error(`creating job directory ${this.jobDir(id)}: ${(cause as Error).message}`, {
        cause,
      });
    }
  }

  /** Removes a job's directory (a start that failed before the job existed). */
  async removeJobDir(id: string): Promise<void> {
    await rm(this.jobDir(id), { recursive: true, force: true });
  }

  /**
   * Atomically replaces a job's meta.json. Saves of one job are applied in call order; the
   * returned promise settles when this save is on disk (rejects with the reason otherwise).
   */
  save(rec: JobRecord): Promise<void> {
    const id = rec.info.id;
    const text = encodeRecord(rec);
    const prev = this.#chains.get(id) ?? Promise.resolve();
    const next = prev.then(() => this.#write(id, text));
    const settled = next.catch(() => undefined);
    this.#chains.set(id, settled);
    void settled.then(() => {
      if (this.#chains.get(id) === settled) this.#chains.delete(id);
    });
    return next;
  }

  /** Resolves when every save issued so far has settled. */
  async flush(): Promise<void> {
    await Promise.all([...this.#chains.values()]);
  }

  async #write(id: string, text: string): Promise<void> {
    const final = this.metaPath(id);
    const tmp = `${final}.tmp`;
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, final);
    } catch (cause) {
      throw new Error(`saving job metadata ${final}: ${(cause as Error).message}`, { cause });
    }
  }

  /** Every readable job record; unreadable ones are logged and skipped. */
  async loadAll(): Promise<JobRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.jobsDir);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`listing jobs in ${this.jobsDir}: ${(cause as Error).message}`, { cause });
    }
    const out: JobRecord[] = [];
    await Promise.all(
      names
        .filter((n) => UUID.test(n))
        .map(async (id) => {
          const path = this.metaPath(id);
          try {
            const rec = decodeRecord(await readFile(path, 'utf8'));
            if (rec.info.id !== id) throw new Error(`id ${rec.info.id} does not match directory`);
            out.push(rec);
          } catch (err) {
            this.#log.warn(
              { path, err: (err as Error).message },
              'skipping unreadable job metadata',
            );
          }
        }),
    );
    out.sort((a, b) => a.info.startedAt.getTime() - b.info.startedAt.getTime());
    return out;
  }
}

/**
 * What a restart makes of a job that was still running: `lost`, ended now. Pure; the caller kills
 * what is left of it and saves the result.
 */
export function markLost(rec: JobRecord, now: Date): JobRecord {
  if (rec.info.status !== 'running') return rec;
  return {
    info: {
      ...rec.info,
      status: 'lost',
      endedAt: now,
      reason: 'the server restarted while the job was running',
    },
    host: rec.host,
  };
}
