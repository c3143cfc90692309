// How cu-thor shows executions: a JSON shape for scripts, text for people.
import type { Execution, Limits } from '../../shared/proto/jobexec.ts';

/** An execution as `--json` prints it: plain numbers, ISO times, null for absent values. */
export interface ExecutionJson {
  id: string;
  command: string;
  args: string[];
  owner: string;
  status: string;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  startedAt: string | null;
  endedAt: string | null;
  limits: {
    cpuPercent: number | null;
    memoryMaxBytes: number | null;
    memoryHighBytes: number | null;
    pidsMax: number | null;
    io: { device: string; rbps: number | null; wbps: number | null }[];
  };
  usage: { cpuUsec: number | null; memoryPeakBytes: number | null };
  outputBytes: number;
  outputTruncated: boolean;
}

/** "EXECUTION_STATUS_OOM_KILLED" → "oom_killed" (the library's names). */
export function statusName(status: string): string {
  return status.replace(/^EXECUTION_STATUS_/, '').toLowerCase();
}

function num(v: string | number | undefined | null): number | null {
  return v === undefined || v === null ? null : Number(v);
}

function iso(ts: { seconds: string; nanos: number } | null): string | null {
  if (ts === null) return null;
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6)).toISOString();
}

function limitsJson(l: Limits | null): ExecutionJson['limits'] {
  return {
    cpuPercent: num(l?.cpuPercent),
    memoryMaxBytes: num(l?.memoryMaxBytes),
    memoryHighBytes: num(l?.memoryHighBytes),
    pidsMax: num(l?.pidsMax),
    io: (l?.io ?? []).map((d) => ({ device: d.device, rbps: num(d.rbps), wbps: num(d.wbps) })),
  };
}

export function toJson(e: Execution): ExecutionJson {
  return {
    id: e.id,
    command: e.command,
    args: e.args,
    owner: e.owner,
    status: statusName(e.status),
    exitCode: e.exitCode ?? null,
    signal: e.signal === '' ? null : e.signal,
    reason: e.reason === '' ? null : e.reason,
    startedAt: iso(e.startedAt),
    endedAt: iso(e.endedAt),
    limits: limitsJson(e.limits),
    usage: { cpuUsec: num(e.usage?.cpuUsec), memoryPeakBytes: num(e.usage?.memoryPeakBytes) },
    outputBytes: Number(e.outputBytes),
    outputTruncated: e.outputTruncated,
  };
}

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i] ?? ''}`;
}

/** "exited (code 0)", "killed (SIGKILL)", "running". */
export function outcome(j: ExecutionJson): string {
  if (j.exitCode !== null) return `${j.status} (code ${j.exitCode})`;
  if (j.signal !== null) return `${j.status} (${j.signal})`;
  return j.status;
}

/** A shell-like rendering of the command line, for display only. */
export function commandLine(j: ExecutionJson): string {
  return [j.command, ...j.args]
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)))
    .join(' ');
}

function limitsText(l: ExecutionJson['limits']): string {
  const parts: string[] = [];
  if (l.cpuPercent !== null) parts.push(`cpu ${l.cpuPercent}%`);
  if (l.memoryMaxBytes !== null) parts.push(`memory max ${bytes(l.memoryMaxBytes)}`);
  if (l.memoryHighBytes !== null) parts.push(`memory high ${bytes(l.memoryHighBytes)}`);
  if (l.pidsMax !== null) parts.push(`pids ${l.pidsMax}`);
  for (const d of l.io) {
    if (d.rbps !== null) parts.push(`${d.device} read ${bytes(d.rbps)}/s`);
    if (d.wbps !== null) parts.push(`${d.device} write ${bytes(d.wbps)}/s`);
  }
  return parts.length === 0 ? 'none' : parts.join(', ');
}

/** `cu-thor status` as text: one "key: value" a line. */
export function statusText(e: Execution): string {
  const j = toJson(e);
  const rows: [string, string][] = [
    ['id', j.id],
    ['command', commandLine(j)],
    ['owner', j.owner],
    ['status', outcome(j)],
  ];
  if (j.reason !== null) rows.push(['reason', j.reason]);
  rows.push(['started', j.startedAt ?? '-'], ['ended', j.endedAt ?? '-']);
  rows.push(['limits', limitsText(j.limits)]);
  const usage: string[] = [];
  if (j.usage.cpuUsec !== null) usage.push(`cpu ${(j.usage.cpuUsec / 1e6).toFixed(3)} s`);
  if (j.usage.memoryPeakBytes !== null) usage.push(`memory peak ${bytes(j.usage.memoryPeakBytes)}`);
  rows.push(['usage', usage.length === 0 ? 'unknown' : usage.join(', ')]);
  rows.push(['output', `${bytes(j.outputBytes)}${j.outputTruncated ? ' (truncated)' : ''}`]);
  return rows.map(([k, v]) => `${`${k}:`.padEnd(9)} ${v}`).join('\n') + '\n';
}

/** `cu-thor list` as text: a table, one execution a line. */
export function listText(list: readonly Execution[]): string {
  const rows = list.map((e) => {
    const j = toJson(e);
    return [j.id, outcome(j), j.startedAt ?? '-', commandLine(j)];
  });
  const header = ['ID', 'STATUS', 'STARTED', 'COMMAND'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}
