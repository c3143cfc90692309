// TOML configuration: read, parse, validate against a strict zod schema, freeze. Every problem is
// reported with the file and either the line/column (syntax) or the key path (schema).
import { readFile } from 'node:fs/promises';
import toml from 'toml';
import type { z } from 'zod';

export * from './types.ts';

export type ConfigErrorKind = 'missing' | 'unreadable' | 'syntax' | 'invalid';

/** One schema problem: where (`path` as in the TOML file) and what. */
export interface ConfigIssue {
  path: readonly (string | number)[];
  /** `[limits].cpu_percent`, `listen`, or `top level` when the problem is the whole file. */
  where: string;
  message: string;
}

/** A config file that could not be used; `message` holds one line per problem, each naming the file. */
export class ConfigError extends Error {
  readonly kind: ConfigErrorKind;
  readonly file: string;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly issues: readonly ConfigIssue[];
  /** the message split into its lines, one per problem */
  readonly lines: readonly string[];

  constructor(
    kind: ConfigErrorKind,
    file: string,
    lines: readonly string[],
    extra: { line?: number; column?: number; issues?: readonly ConfigIssue[] } = {},
    options?: ErrorOptions,
  ) {
    super(lines.join('\n'), options);
    this.name = 'ConfigError';
    this.kind = kind;
    this.file = file;
    this.lines = lines;
    this.line = extra.line;
    this.column = extra.column;
    this.issues = extra.issues ?? [];
  }
}

/** Reads `file`, parses it as TOML and validates it; the result is deeply frozen. */
export async function loadConfig<S extends z.ZodType>(
  file: string,
  schema: S,
): Promise<Readonly<z.output<S>>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ConfigError('missing', file, [`${file}: no such file`], {}, { cause: err });
    }
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError(
      'unreadable',
      file,
      [`${file}: cannot read: ${reason}`],
      {},
      {
        cause: err,
      },
    );
  }
  return parseConfig(text, file, schema);
}

/** Parses TOML `text` (named `file` in messages) and validates it; an empty text gives all defaults. */
export function parseConfig<S extends z.ZodType>(
  text: string,
  file: string,
  schema: S,
): Readonly<z.output<S>> {
  let raw: unknown;
  try {
    raw = toml.parse(text);
  } catch (err) {
    throw syntaxError(err, file);
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issues = result.error.issues.flatMap((i) => describeIssue(i, raw));
    throw invalid(file, issues, result.error);
  }
  // Safety net for schemas that use z.object instead of z.strictObject somewhere: a key the
  // input has and the output dropped was stripped as unknown.
  const stripped = strippedKeys(raw, result.data, []);
  if (stripped.length > 0) throw invalid(file, stripped);
  return deepFreeze(result.data);
}

function invalid(file: string, issues: ConfigIssue[], cause?: unknown): ConfigError {
  const lines = issues.map((i) =>
    i.path.length === 0 || i.message.startsWith('unknown key')
      ? `${file}: ${i.message}`
      : `${file}: ${i.where}: ${i.message}`,
  );
  return new ConfigError('invalid', file, lines, { issues }, cause === undefined ? {} : { cause });
}

interface TomlLocatedError {
  message?: unknown;
  location?: { start?: { line?: unknown; column?: unknown } };
  line?: unknown;
  column?: unknown;
}

function syntaxError(err: unknown, file: string): ConfigError {
  const e = (typeof err === 'object' && err !== null ? err : {}) as TomlLocatedError;
  const msg = typeof e.message === 'string' ? e.message : String(err);
  const start = e.location?.start;
  const line = typeof start?.line === 'number' ? start.line : numberOrUndefined(e.line);
  const column = typeof start?.column === 'number' ? start.column : numberOrUndefined(e.column);
  const reason = lowerFirst(msg.replace(/\.$/, ''));
  const at = line === undefined ? '' : column === undefined ? `:${line}` : `:${line}:${column}`;
  const pos: { line?: number; column?: number } = {};
  if (line !== undefined) pos.line = line;
  if (column !== undefined) pos.column = column;
  return new ConfigError('syntax', file, [`${file}${at}: syntax error: ${reason}`], pos, {
    cause: err,
  });
}

function numberOrUndefined(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function lowerFirst(s: string): string {
  return s.length > 0 ? s[0]!.toLowerCase() + s.slice(1) : s;
}

/** `[limits].cpu_percent`, `listen`, `[a.b].list[2]`, `top level`. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return 'top level';
  // the key part is the last string segment plus any array indices after it
  let k = path.length - 1;
  while (k > 0 && typeof path[k] === 'number') k--;
  const seg = (p: PropertyKey): string => (typeof p === 'number' ? `[${p}]` : String(p));
  const join = (parts: readonly PropertyKey[]): string =>
    parts.reduce<string>(
      (acc, p, i) =>
        typeof p === 'number' ? acc + seg(p) : i === 0 ? String(p) : `${acc}.${String(p)}`,
      '',
    );
  const table = join(path.slice(0, k));
  const key = join(path.slice(k));
  return table === '' ? key : `[${table}].${key}`;
}

function tableName(path: readonly PropertyKey[]): string {
  return path.length === 0 ? 'at top level' : `in [${formatKeyPath(path).replace(/^\[|\]$/g, '')}]`;
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): ConfigIssue[] {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      path: [...path, key],
      where: formatKeyPath([...path, key]),
      message: `unknown key ${JSON.stringify(key)} ${tableName(path)}`,
    }));
  }
  let message: string;
  if (issue.code === 'invalid_type') {
    const got = valueAt(raw, path);
    message = !got.found
      ? `required key is missing (expected ${issue.expected})`
      : `expected ${issue.expected}, got ${typeName(got.value)}`;
  } else {
    message = lowerFirst(issue.message.replace(/^Invalid input: /, ''));
  }
  return [{ path, where: formatKeyPath(path), message }];
}

function valueAt(
  raw: unknown,
  path: readonly (string | number)[],
): { found: boolean; value?: unknown } {
  let cur: unknown = raw;
  for (const p of path) {
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, p)) return { found: false };
    cur = (cur as Record<string | number, unknown>)[p];
  }
  return { found: cur !== undefined, value: cur };
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'datetime';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'table';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'float';
  return typeof v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function strippedKeys(input: unknown, output: unknown, path: (string | number)[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  if (isPlainObject(input) && isPlainObject(output)) {
    for (const key of Object.keys(input)) {
      if (!Object.hasOwn(output, key)) {
        out.push({
          path: [...path, key],
          where: formatKeyPath([...path, key]),
          message: `unknown key ${JSON.stringify(key)} ${tableName(path)}`,
        });
      } else {
        out.push(...strippedKeys(input[key], output[key], [...path, key]));
      }
    }
  } else if (Array.isArray(input) && Array.isArray(output) && input.length === output.length) {
    input.forEach((v, i) => out.push(...strippedKeys(v, output[i], [...path, i])));
  }
  return out;
}

/** Freezes `value` and everything reachable from it (plain objects and arrays). */
export function deepFreeze<T>(value: T): Readonly<T> {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
