// Pages of ListAllExecutions. Executions are never deleted, so an owner's list only grows: one
// answer holding all of them would pass grpc-js's 4 MiB message limit sooner or later and the
// list could no longer be read at all. Pages are cut by count and by encoded bytes, in a stable
// order (started_at, then id), and a page token names the last entry handed out.
import type { ExecutionIn } from '../../shared/proto/jobexec.ts';
import type { ExecutionInfo } from './types.ts';

/** Bounds of one ListAllExecutions page. */
export const LIST_PAGE = {
  /** entries when the request names no page_size (or 0). */
  defaultSize: 100,
  /** page_size above this is lowered to it. */
  maxSize: 1000,
  /**
   * encoded bytes of a page's entries, well under the 4 MiB every grpc-js peer accepts by
   * default. One entry is at most ~400 KiB (REQUEST_BOUNDS: 128 KiB of command line, 64 io
   * devices of 4096 bytes), so a page always fits at least one.
   */
  maxBytes: 1024 * 1024,
} as const;

/** Where a page starts: after the entry with this start time (ms) and id. */
export interface PageKey {
  startedMs: number;
  id: string;
}

const TOKEN_PREFIX = 'v1:';
const TOKEN_BODY = /^v1:(\d{1,16}):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** The opaque token of a page that starts after `key`. */
export function encodePageToken(key: PageKey): string {
  return Buffer.from(`${TOKEN_PREFIX}${key.startedMs}:${key.id}`).toString('base64url');
}

/** The key a token names, or null when this server did not hand it out. */
export function decodePageToken(token: string): PageKey | null {
  if (token.length > 128 || !/^[A-Za-z0-9_-]+$/.test(token)) return null;
  const m = TOKEN_BODY.exec(Buffer.from(token, 'base64url').toString('latin1'));
  if (m === null) return null;
  const startedMs = Number(m[1]);
  if (!Number.isSafeInteger(startedMs)) return null;
  return { startedMs, id: m[2]! };
}

function compareKeys(a: PageKey, b: PageKey): number {
  if (a.startedMs !== b.startedMs) return a.startedMs - b.startedMs;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

const keyOf = (i: ExecutionInfo): PageKey => ({ startedMs: i.startedAt.getTime(), id: i.id });

/** The entries per page a request asks for, within LIST_PAGE. */
export function pageSize(requested: number | undefined): number {
  if (requested === undefined || requested === 0) return LIST_PAGE.defaultSize;
  return Math.min(requested, LIST_PAGE.maxSize);
}

export interface Page {
  executions: ExecutionIn[];
  /** empty on the last page. */
  nextPageToken: string;
}

/**
 * The page of `infos` after `after` (null: the first page): at most `size` entries and at most
 * `maxBytes` of them encoded (`entryBytes`), but never fewer than one while any are left.
 */
export function listPage(
  infos: readonly ExecutionInfo[],
  after: PageKey | null,
  size: number,
  toWire: (info: ExecutionInfo) => ExecutionIn,
  entryBytes: (e: ExecutionIn) => number,
  maxBytes: number = LIST_PAGE.maxBytes,
): Page {
  const rest = infos
    .filter((i) => after === null || compareKeys(keyOf(i), after) > 0)
    .sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
  const executions: ExecutionIn[] = [];
  let bytes = 0;
  let taken = 0;
  for (const info of rest) {
    if (executions.length >= size) break;
    const wire = toWire(info);
    const n = entryBytes(wire);
    if (executions.length > 0 && bytes + n > maxBytes) break;
    executions.push(wire);
    bytes += n;
    taken++;
  }
  const last = rest[taken - 1];
  return {
    executions,
    nextPageToken: taken < rest.length && last !== undefined ? encodePageToken(keyOf(last)) : '',
  };
}
