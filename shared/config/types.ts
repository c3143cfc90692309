// Reusable zod types for hostplane config files. Each one accepts what an operator writes in TOML
// and outputs the value the daemon uses (milliseconds, bytes, a parsed host:port...).
// Defaults: zod 4's `.default(v)` takes the OUTPUT and skips the transform, so write
// `duration().default(10_000)` or, in the operator's notation, `duration().prefault('10s')`.
import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses "250ms", "10s", "1m", "1h30m", "1.5s" into milliseconds; undefined if not a duration. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '') return undefined;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    end = re.lastIndex;
  }
  if (end !== s.length) return undefined;
  return Math.round(total);
}

/**
 * A duration string ("10s", "1m", "1h30m", "250ms") → milliseconds, at least `min` (default 1):
 * a timeout or ttl of "0s" (or "0.4ms", which rounds to 0) would refuse everything at run time,
 * so it is refused when the config is read. Pass `{ min: 0 }` where zero means "at once".
 */
export function duration(opts: { min?: number } = {}): z.ZodType<number, string> {
  const min = opts.min ?? 1;
  return z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration like "250ms", "10s", "1m" or "1h30m", got ${JSON.stringify(text)}`,
      });
      return z.NEVER;
    }
    if (ms < min) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration of at least ${min}ms, got ${JSON.stringify(text)}`,
      });
      return z.NEVER;
    }
    return ms;
  });
}

// K/M/G/T and KiB/MiB/... are powers of 1024 (as systemd's MemoryMax= and cgroup files read
// them); KB/MB/GB/TB are powers of 1000.
const BYTE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
};

/** Parses "512M", "1G", "64KiB", "10MB", "4096" into bytes; undefined if not a size. */
export function parseByteSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (m === null) return undefined;
  const mult = BYTE_UNITS[m[2]!.toLowerCase()];
  if (mult === undefined) return undefined;
  const bytes = Number(m[1]) * mult;
  if (!Number.isSafeInteger(Math.floor(bytes))) return undefined;
  return Math.floor(bytes);
}

/** A size ("512M", "1G", "64KiB", or a plain integer of bytes) → bytes. */
export function byteSize(): z.ZodType<number, string | number> {
  return z.union([z.string(), z.number()]).transform((v, ctx) => {
    const bytes =
      typeof v === 'number'
        ? Number.isSafeInteger(v) && v >= 0
          ? v
          : undefined
        : parseByteSize(v);
    if (bytes === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a size like "512M", "1G", "64KiB" or an integer of bytes, got ${JSON.stringify(v)}`,
      });
      return z.NEVER;
    }
    return bytes;
  });
}

/** A parsed `host:port`; `host` has no brackets (`::1`, not `[::1]`). */
export interface HostPort {
  host: string;
  port: number;
}

/** Parses "0.0.0.0:50051", "[::1]:443", "localhost:1"; undefined if malformed. */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.%\w]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  if (m[1] !== undefined) {
    return isIP(m[1].split('%')[0]!) === 6 ? { host: m[1], port } : undefined;
  }
  const host = m[2]!;
  if (isIP(host) === 0 && !isHostname(host)) return undefined;
  return { host, port };
}

/** `host:port` ("0.0.0.0:50051", "[::1]:443", "localhost:1") → `{ host, port }`. Port 0 is allowed. */
export function hostPort(): z.ZodType<HostPort, string> {
  return z.string().transform((text, ctx) => {
    const hp = parseHostPort(text);
    if (hp === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected host:port like "0.0.0.0:50051" or "[::1]:443", got ${JSON.stringify(text)}`,
      });
      return z.NEVER;
    }
    return hp;
  });
}

/** An IPv4 or IPv6 address (as node:net reads them); `version` restricts to one family. */
export function ipAddress(version?: 4 | 6): z.ZodType<string, string> {
  const family = version === undefined ? 'IP' : `IPv${version}`;
  return z.string().transform((s, ctx) => {
    if (version === undefined ? isIP(s) === 0 : isIP(s) !== version) {
      ctx.addIssue({
        code: 'custom',
        message: `expected an ${family} address, got ${JSON.stringify(s)}`,
      });
      return z.NEVER;
    }
    return s;
  });
}

/** An absolute filesystem path, normalized ("/etc//x/../y" → "/etc/y"). */
export function absolutePath(): z.ZodType<string, string> {
  return z.string().transform((s, ctx) => {
    if (!path.isAbsolute(s) || s.includes('\0')) {
      ctx.addIssue({
        code: 'custom',
        message: `expected an absolute path, got ${JSON.stringify(s)}`,
      });
      return z.NEVER;
    }
    return path.normalize(s);
  });
}

function isHostname(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  return s.split('.').every((l) => /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(l));
}

/** A fully qualified domain name (two labels or more, RFC 1123); lowercased, trailing dot dropped. */
export function fqdn(): z.ZodType<string, string> {
  return z.string().transform((s, ctx) => {
    const name = s.endsWith('.') ? s.slice(0, -1) : s;
    if (!isHostname(name) || !name.includes('.') || /^[\d.]+$/.test(name)) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a fully qualified domain name like "api.example.com", got ${JSON.stringify(s)}`,
      });
      return z.NEVER;
    }
    return name.toLowerCase();
  });
}

/** A TOML table whose keys all have defaults: absent in the file → all defaults. Unknown keys are errors. */
export function section<T extends z.core.$ZodLooseShape>(shape: T) {
  // prefault (not default): the empty table is parsed, so the inner defaults apply; a table
  // with a required key fails on it as if the file had an empty table
  return z.strictObject(shape).prefault({} as z.input<z.ZodObject<T, z.core.$strict>>);
}
