// One-time token cache for exec sessions: Exec stores a request under a random 256-bit token and
// the streaming server takes it back exactly once, before its TTL. Lookups go through a SHA-256 of
// the token, then a constant-time compare, so response timing says nothing about stored tokens.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Milliseconds since some epoch; tests pass a fake one. */
export type Clock = () => number;

export interface TokenStoreOptions {
  /** how long a token stays usable; default 60 s. */
  ttlMs?: number;
  /** at most this many unused, unexpired tokens at once; default 1,000. */
  maxInFlight?: number;
  /** default monotonic (performance.now): a wall-clock step back must not extend a token's life */
  clock?: Clock;
  /** source of randomness (32 bytes per token); tests may pin it. */
  random?: (n: number) => Buffer;
}

/** `put` refused: the store holds `maxInFlight` live tokens already. */
export class TokenStoreFullError extends Error {
  readonly retryAfterMs: number;
  constructor(max: number, retryAfterMs: number) {
    super(`storing exec request: ${max} exec tokens already in flight`);
    this.name = 'TokenStoreFullError';
    this.retryAfterMs = retryAfterMs;
  }
}

interface Entry<T> {
  token: Buffer;
  value: T;
  expiresAt: number;
}

/** A bounded cache of one-time tokens, each valid for `ttlMs`. */
export class TokenStore<T> {
  readonly ttlMs: number;
  readonly maxInFlight: number;
  readonly #clock: Clock;
  readonly #random: (n: number) => Buffer;
  readonly #entries = new Map<string, Entry<T>>();

  constructor(opts: TokenStoreOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 60_000;
    this.maxInFlight = opts.maxInFlight ?? 1_000;
    this.#clock = opts.clock ?? (() => performance.now());
    this.#random = opts.random ?? randomBytes;
    if (!(this.ttlMs > 0)) throw new Error(`creating token store: ttl ${this.ttlMs} ms is not > 0`);
    if (!(this.maxInFlight >= 1)) {
      throw new Error(`creating token store: max in flight ${this.maxInFlight} is not >= 1`);
    }
  }

  /** Live (unused, unexpired) tokens. */
  get size(): number {
    this.#sweep();
    return this.#entries.size;
  }

  /** Stores `value` and returns its new token (base64url, 43 characters). */
  put(value: T): string {
    this.#sweep();
    if (this.#entries.size >= this.maxInFlight) {
      const first = Math.min(...[...this.#entries.values()].map((e) => e.expiresAt));
      const retry = first - this.#clock();
      throw new TokenStoreFullError(this.maxInFlight, Math.max(1, retry));
    }
    const token = this.#random(32);
    if (token.length !== 32)
      throw new Error('storing exec request: random source gave no 32 bytes');
    const key = digest(token);
    if (this.#entries.has(key)) throw new Error('storing exec request: token collision');
    this.#entries.set(key, { token, value, expiresAt: this.#clock() + this.ttlMs });
    return token.toString('base64url');
  }

  /** The value stored under `token`, removing it; undefined when unknown, used or expired. */
  take(token: string): T | undefined {
    const key = this.#find(token);
    if (key === undefined) return undefined;
    const value = this.#entries.get(key)!.value;
    this.#entries.delete(key);
    return value;
  }

  /** The value stored under `token`, leaving it in place (check it, then take it). */
  peek(token: string): T | undefined {
    const key = this.#find(token);
    return key === undefined ? undefined : this.#entries.get(key)!.value;
  }

  #find(token: string): string | undefined {
    this.#sweep();
    const raw = decodeToken(token);
    if (raw === undefined) return undefined;
    const key = digest(raw);
    const entry = this.#entries.get(key);
    if (entry === undefined || !timingSafeEqual(entry.token, raw)) return undefined;
    return key;
  }

  // every entry, not up to the first live one: insertion order is expiry order only for as long as
  // the clock never goes back (an injected one may); at most maxInFlight entries
  #sweep(): void {
    const now = this.#clock();
    for (const [key, e] of this.#entries) {
      if (e.expiresAt <= now) this.#entries.delete(key);
    }
  }
}

function digest(token: Buffer): string {
  return createHash('sha256').update(token).digest('base64');
}

function decodeToken(token: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
  const raw = Buffer.from(token, 'base64url');
  // 43 characters carry 258 bits: only the spelling put() handed out is the token
  return raw.length === 32 && raw.toString('base64url') === token ? raw : undefined;
}
