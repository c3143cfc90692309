// Job limits: merge a request with the configured defaults, check it against the maxima, and turn
// the result into the cgroup v2 file writes that enforce it (plan as data, applied by applyLimits).
import { deviceProblem, ExecutorError, quoteShort, type IoLimit, type JobLimits } from './types.ts';

/** cpu.max period; the quota is cpuPercent% of it. */
export const CPU_PERIOD_US = 100_000;
/** the kernel refuses cpu.max quotas below 1 ms. */
const MIN_CPU_QUOTA_US = 1_000;

/** Turns a device path such as /dev/vda into "MAJ:MIN"; "MAJ:MIN" is returned unchanged. */
export type DeviceResolver = (device: string) => string;

const MAJ_MIN = /^\d+:\d+$/;

/** The subset of shared/cgroup's Cgroup that applying limits needs. */
export interface LimitTarget {
  setCpuMax(quotaUs: number | null, periodUs?: number): Promise<void>;
  setMemoryMax(bytes: number | null): Promise<void>;
  setMemoryHigh(bytes: number | null): Promise<void>;
  setIoMax(limits: { device: string; rbps?: number; wbps?: number }[]): Promise<void>;
  setPidsMax(n: number | null): Promise<void>;
}

function invalid(message: string): ExecutorError {
  return new ExecutorError('invalid_argument', message);
}

function checkPositive(what: string, value: number | undefined, integer: boolean): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalid(`${what} must be a positive number, got ${String(value)}`);
  }
  if (integer && !Number.isSafeInteger(value)) {
    throw invalid(`${what} must be a whole number, got ${value}`);
  }
}

function checkMax(what: string, value: number | undefined, max: number | undefined): void {
  if (value !== undefined && max !== undefined && value > max) {
    throw invalid(`${what} ${value} is above the configured maximum of ${max}`);
  }
}

/** Checks the shape of a limits object (positive numbers, whole where the kernel wants them). */
export function checkLimitsShape(limits: JobLimits, where = 'limits'): void {
  checkPositive(`${where}.cpuPercent`, limits.cpuPercent, false);
  checkPositive(`${where}.memoryMaxBytes`, limits.memoryMaxBytes, true);
  checkPositive(`${where}.memoryHighBytes`, limits.memoryHighBytes, true);
  checkPositive(`${where}.pidsMax`, limits.pidsMax, true);
  for (const [i, io] of (limits.io ?? []).entries()) {
    if (typeof io.device !== 'string' || io.device === '') {
      throw invalid(`${where}.io[${i}].device must name a block device`);
    }
    checkPositive(`${where}.io[${i}].rbps`, io.rbps, true);
    checkPositive(`${where}.io[${i}].wbps`, io.wbps, true);
    if (io.rbps === undefined && io.wbps === undefined) {
      throw invalid(`${where}.io[${i}] (${quoteShort(io.device, 256)}) sets neither rbps nor wbps`);
    }
  }
}

function resolveIo(list: readonly IoLimit[] | undefined, resolve: DeviceResolver, where: string) {
  const out = new Map<string, IoLimit>();
  for (const io of list ?? []) {
    let device: string;
    try {
      device = MAJ_MIN.test(io.device) ? io.device : resolve(io.device);
    } catch (cause) {
      throw new ExecutorError(
        'invalid_argument',
        `${where}: resolving block device ${quoteShort(io.device, 256)}: ${deviceProblem(cause)}`,
        { cause },
      );
    }
    const prev = out.get(device);
    const merged: IoLimit = { device };
    const rbps = io.rbps ?? prev?.rbps;
    const wbps = io.wbps ?? prev?.wbps;
    if (rbps !== undefined) merged.rbps = rbps;
    if (wbps !== undefined) merged.wbps = wbps;
    out.set(device, merged);
  }
  return out;
}

/**
 * The effective limits of a job: `requested` fields over `defaults`, every value checked against
 * `max`. Throws ExecutorError('invalid_argument') naming the offending field.
 */
export function resolveLimits(
  requested: JobLimits | undefined,
  defaults: JobLimits,
  max: JobLimits,
  resolveDevice: DeviceResolver = (d) => d,
): JobLimits {
  const req = requested ?? {};
  checkLimitsShape(req);
  const out: JobLimits = {};
  const cpuPercent = req.cpuPercent ?? defaults.cpuPercent;
  const memoryMaxBytes = req.memoryMaxBytes ?? defaults.memoryMaxBytes;
  const memoryHighBytes = req.memoryHighBytes ?? defaults.memoryHighBytes;
  const pidsMax = req.pidsMax ?? defaults.pidsMax;
  checkMax('cpuPercent', cpuPercent, max.cpuPercent);
  checkMax('memoryMaxBytes', memoryMaxBytes, max.memoryMaxBytes);
  checkMax('memoryHighBytes', memoryHighBytes, max.memoryHighBytes);
  checkMax('pidsMax', pidsMax, max.pidsMax);
  if (cpuPercent !== undefined) out.cpuPercent = cpuPercent;
  if (memoryMaxBytes !== undefined) out.memoryMaxBytes = memoryMaxBytes;
  if (memoryHighBytes !== undefined) out.memoryHighBytes = memoryHighBytes;
  if (pidsMax !== undefined) out.pidsMax = pidsMax;

  const io = resolveIo(defaults.io, resolveDevice, 'default limits');
  for (const [device, l] of resolveIo(req.io, resolveDevice, 'limits')) {
    io.set(device, { ...io.get(device), ...l });
  }
  const maxIo = resolveIo(max.io, resolveDevice, 'maximum limits');
  for (const [device, l] of io) {
    const m = maxIo.get(device);
    checkMax(`io rbps of ${device}`, l.rbps, m?.rbps);
    checkMax(`io wbps of ${device}`, l.wbps, m?.wbps);
  }
  if (io.size > 0) out.io = [...io.values()];
  return out;
}

/** One write into a cgroup's control file. */
export interface CgroupWrite {
  file: 'cpu.max' | 'memory.max' | 'memory.high' | 'pids.max' | 'io.max';
  value: string;
}

/** cpu.max quota for a percentage of one cpu. */
export function cpuQuotaUs(cpuPercent: number, periodUs = CPU_PERIOD_US): number {
  return Math.max(MIN_CPU_QUOTA_US, Math.round((cpuPercent * periodUs) / 100));
}

/** The cgroup file writes that enforce `limits` (unset limits are not written: a new cgroup is
 * unlimited). Pure; tests compare it as text. */
export function limitWrites(limits: JobLimits): CgroupWrite[] {
  const out: CgroupWrite[] = [];
  if (limits.cpuPercent !== undefined) {
    out.push({ file: 'cpu.max', value: `${cpuQuotaUs(limits.cpuPercent)} ${CPU_PERIOD_US}` });
  }
  if (limits.memoryMaxBytes !== undefined) {
    out.push({ file: 'memory.max', value: String(limits.memoryMaxBytes) });
  }
  if (limits.memoryHighBytes !== undefined) {
    out.push({ file: 'memory.high', value: String(limits.memoryHighBytes) });
  }
  if (limits.pidsMax !== undefined) out.push({ file: 'pids.max', value: String(limits.pidsMax) });
  for (const io of limits.io ?? []) {
    out.push({
      file: 'io.max',
      value: `${io.device} rbps=${io.rbps ?? 'max'} wbps=${io.wbps ?? 'max'}`,
    });
  }
  return out;
}

/** The cgroup controllers a limits object needs. */
export function controllersFor(limits: JobLimits): string[] {
  const set = new Set<string>();
  for (const w of limitWrites(limits)) set.add(w.file.split('.')[0]!);
  return [...set];
}

/** Writes `limits` into a cgroup through shared/cgroup (same content as limitWrites). */
export async function applyLimits(target: LimitTarget, limits: JobLimits): Promise<void> {
  if (limits.cpuPercent !== undefined) {
    await target.setCpuMax(cpuQuotaUs(limits.cpuPercent), CPU_PERIOD_US);
  }
  if (limits.memoryMaxBytes !== undefined) await target.setMemoryMax(limits.memoryMaxBytes);
  if (limits.memoryHighBytes !== undefined) await target.setMemoryHigh(limits.memoryHighBytes);
  if (limits.pidsMax !== undefined) await target.setPidsMax(limits.pidsMax);
  if (limits.io !== undefined && limits.io.length > 0) {
    await target.setIoMax(
      limits.io.map((io) => {
        const l: { device: string; rbps?: number; wbps?: number } = { device: io.device };
        if (io.rbps !== undefined) l.rbps = io.rbps;
        if (io.wbps !== undefined) l.wbps = io.wbps;
        return l;
      }),
    );
  }
}
