// Pure formatting and parsing of cgroup v2 interface files (plans as text, tested as text).

/** One io.max line's limits for a block device "MAJ:MIN"; an absent limit is "max". */
export interface IoLimit {
  device: string;
  rbps?: number;
  wbps?: number;
  riops?: number;
  wiops?: number;
}

export interface CpuStat {
  usageUsec: number;
  userUsec: number;
  systemUsec: number;
  nrPeriods: number;
  nrThrottled: number;
  throttledUsec: number;
}

export interface MemoryEvents {
  low: number;
  high: number;
  max: number;
  oom: number;
  oomKill: number;
}

const DEFAULT_CPU_PERIOD_US = 100_000;

function checkCount(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
  }
}

/** "max" for no limit, else the number: the format of memory.max, memory.high, pids.max, ... */
export function formatLimit(what: string, n: number | null): string {
  if (n === null) return 'max';
  checkCount(what, n);
  return String(n);
}

/** cpu.max: "max 100000" or "50000 100000" (quota and period in microseconds). */
export function formatCpuMax(quotaUs: number | null, periodUs = DEFAULT_CPU_PERIOD_US): string {
  // The kernel accepts periods of 1 ms to 1 s and quotas of at least 1 ms.
  if (!Number.isSafeInteger(periodUs) || periodUs < 1000 || periodUs > 1_000_000) {
    throw new RangeError(`cpu.max period must be 1000..1000000 µs, got ${periodUs}`);
  }
  if (quotaUs === null) return `max ${periodUs}`;
  if (!Number.isSafeInteger(quotaUs) || quotaUs < 1000) {
    throw new RangeError(`cpu.max quota must be an integer of at least 1000 µs, got ${quotaUs}`);
  }
  return `${quotaUs} ${periodUs}`;
}

/** One io.max line; every key is written so the line states the device's whole limit. */
export function formatIoMax(limit: IoLimit): string {
  if (!/^\d+:\d+$/.test(limit.device)) {
    throw new RangeError(`io.max device must be "MAJ:MIN", got ${JSON.stringify(limit.device)}`);
  }
  const keys = ['rbps', 'wbps', 'riops', 'wiops'] as const;
  const parts = keys.map((k) => `${k}=${formatLimit(`io.max ${k}`, limit[k] ?? null)}`);
  return `${limit.device} ${parts.join(' ')}`;
}

/** Parses a flat-keyed file ("key value" lines, e.g. cpu.stat, memory.events). */
export function parseFlatKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key === undefined || key === '' || value === undefined) continue;
    out.set(key, value === 'max' ? Number.POSITIVE_INFINITY : Number(value));
  }
  return out;
}

/** cpu.stat; the nr_* and throttled_* keys exist only when the cpu controller is enabled. */
export function parseCpuStat(text: string): CpuStat {
  const kv = parseFlatKeyed(text);
  const get = (k: string): number => kv.get(k) ?? 0;
  return {
    usageUsec: get('usage_usec'),
    userUsec: get('user_usec'),
    systemUsec: get('system_usec'),
    nrPeriods: get('nr_periods'),
    nrThrottled: get('nr_throttled'),
    throttledUsec: get('throttled_usec'),
  };
}

export function parseMemoryEvents(text: string): MemoryEvents {
  const kv = parseFlatKeyed(text);
  const get = (k: string): number => kv.get(k) ?? 0;
  return {
    low: get('low'),
    high: get('high'),
    max: get('max'),
    oom: get('oom'),
    oomKill: get('oom_kill'),
  };
}

/** A single number file (memory.current, memory.peak). */
export function parseNumber(what: string, text: string): number {
  const n = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(n)) {
    throw new Error(`parsing ${what}: not a number: ${JSON.stringify(text.slice(0, 40))}`);
  }
  return n;
}

/** cgroup.procs: one pid a line. */
export function parsePids(text: string): number[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map(Number);
}

/** Space-separated names (cgroup.controllers, cgroup.subtree_control). */
export function parseNames(text: string): string[] {
  return text.split(/\s+/).filter((s) => s !== '');
}

/** The cgroup path of a process from /proc/<pid>/cgroup, which must be one "0::/path" line. */
export function parseProcCgroup(text: string): string {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const only = lines[0];
  if (lines.length !== 1 || only?.startsWith('0::/') !== true) {
    throw new Error(
      `not a pure cgroup v2 process (want one "0::/path" line, got ${JSON.stringify(lines.slice(0, 3))}): hybrid or v1 hierarchy?`,
    );
  }
  return only.slice(3);
}

/** Whether cgroup.events says the cgroup (with its descendants) has no processes left. */
export function isPopulated(eventsText: string): boolean {
  return (parseFlatKeyed(eventsText).get('populated') ?? 0) !== 0;
}
