// Terminal sessions: the record (creator, target, state, viewers), its console, the scrollback a
// re-attach replays, the attachments, one-time attach tokens, heartbeats and the ttl sweep.
// Time comes from an injected clock, so tests expire sessions without waiting.
import { randomUUID } from 'node:crypto';
import { HttpError } from '../../shared/http/errors.ts';
import type { Identity } from '../../shared/http/identity.ts';
import type { Logger } from '../../shared/log/index.ts';
import {
  TokenStore,
  TokenStoreFullError,
  type Clock,
  type ExitStatus,
  type TermSize,
} from '../../shared/stream/index.ts';
import type { TargetConfig } from './config.ts';
import type { TerminalConsole } from './sandbox.ts';

export type SessionState = 'starting' | 'ready' | 'ended';

/** Starts the console of `target` for `session`; the session is ready once it resolves. */
export type StartTarget = (
  target: TargetConfig,
  session: { id: string; user: Identity },
  size: TermSize,
) => Promise<TerminalConsole>;

/** Someone attached to a session: output goes to `send`, `end` closes it with the final status. */
export interface Attachment {
  readonly readOnly: boolean;
  send(data: Buffer): void;
  /** unsent bytes (for backpressure) */
  buffered(): number;
  end(status: ExitStatus): void;
}

/** What the API shows of a session. */
export interface SessionView {
  id: string;
  target: string;
  creator: string;
  state: SessionState;
  createdAt: string;
  viewers: string[];
}

/** Bytes kept for re-attach: the last `max`, in chunks. */
class Scrollback {
  readonly max: number;
  #chunks: Buffer[] = [];
  #size = 0;
  constructor(max: number) {
    this.max = max;
  }
  push(b: Buffer): void {
    if (this.max === 0) return;
    this.#chunks.push(b);
    this.#size += b.length;
    while (this.#size > this.max && this.#chunks.length > 0) {
      const first = this.#chunks[0]!;
      const over = this.#size - this.max;
      if (first.length <= over) {
        this.#chunks.shift();
        this.#size -= first.length;
      } else {
        this.#chunks[0] = first.subarray(over);
        this.#size -= over;
      }
    }
  }
  contents(): Buffer {
    return Buffer.concat(this.#chunks);
  }
}

/** a writer lagging more than this pauses the console, until it is below LOW_WATER again */
const HIGH_WATER = 1 << 20;
const LOW_WATER = 1 << 18;
/** how far a read-only attachment may lag (past its scrollback replay) before it is dropped */
export const READER_LAG = 4 << 20;
/** the same for a writer, whose lag the console pause keeps near HIGH_WATER: a hard cap */
export const WRITER_LAG = 16 << 20;

/** One session. */
export class Session {
  readonly id = randomUUID();
  readonly creator: Identity;
  readonly target: TargetConfig;
  readonly createdAt: number;
  readonly viewers = new Set<string>();
  state: SessionState = 'starting';
  lastHeartbeat: number;
  console: TerminalConsole | undefined;
  /** settles once the console started (or failed to) */
  ready: Promise<void> = Promise.resolve();
  readonly #scrollback: Scrollback;
  readonly #attachments = new Set<Attachment>();
  #paused = false;
  #ended = false;

  constructor(creator: Identity, target: TargetConfig, now: number, scrollback: number) {
    this.creator = creator;
    this.target = target;
    this.createdAt = now;
    this.lastHeartbeat = now;
    this.#scrollback = new Scrollback(scrollback);
  }

  get attachments(): number {
    return this.#attachments.size;
  }

  view(): SessionView {
    return {
      id: this.id,
      target: this.target.name,
      creator: this.creator.user,
      state: this.state,
      createdAt: new Date(this.createdAt).toISOString(),
      viewers: [...this.viewers].sort(),
    };
  }

  /** Wires the console's output to the scrollback and every attachment. */
  bind(con: TerminalConsole): void {
    this.console = con;
    con.onOutput((data) => {
      this.#scrollback.push(data);
      for (const a of this.#attachments) {
        a.send(data);
        this.#checkLag(a);
      }
      this.#checkPressure();
    });
  }

  /** Adds an attachment: it first gets the scrollback, then live output. */
  attach(a: Attachment): () => void {
    if (this.#ended) {
      a.end({ kind: 'error', message: 'session ended' });
      return () => undefined;
    }
    const back = this.#scrollback.contents();
    if (back.length > 0) a.send(back);
    this.#attachments.add(a);
    this.#checkPressure();
    return () => {
      this.#attachments.delete(a);
      this.#checkPressure();
    };
  }

  /** Input from a writer; false when the console takes no more for now (see onceInputDrained). */
  input(a: Attachment, data: Buffer): boolean {
    if (a.readOnly || this.console === undefined) return true;
    return this.console.write(data);
  }

  /** Calls `fn` once the console has taken its buffered input (at once without a console). */
  onceInputDrained(fn: () => void): void {
    if (this.console === undefined) setImmediate(fn);
    else this.console.onceInputDrained(fn);
  }

  resize(a: Attachment, size: TermSize): void {
    if (!a.readOnly) this.console?.resize(size);
  }

  /** Called after sends complete: pauses the console while a reader lags far behind. */
  drained(): void {
    this.#checkPressure();
  }

  /**
   * Drops `a` when it lags past its cap: the scrollback it was replayed plus READER_LAG, or
   * WRITER_LAG for a writer. Its output is skipped from then on; the rest go on.
   */
  #checkLag(a: Attachment): void {
    const cap = this.#scrollback.max + (a.readOnly ? READER_LAG : WRITER_LAG);
    const lag = a.buffered();
    if (lag <= cap) return;
    this.#attachments.delete(a);
    a.end({
      kind: 'error',
      message:
        `attachment fell behind: ${lag} bytes unsent, more than the ${cap} ` +
        `${a.readOnly ? 'a read-only' : 'any'} attachment may lag; attach again to go on`,
    });
  }

  // only writers pause the console: a viewer that stops reading must not freeze the terminal
  #checkPressure(): void {
    const con = this.console;
    if (con === undefined) return;
    let most = 0;
    for (const a of this.#attachments) if (!a.readOnly) most = Math.max(most, a.buffered());
    if (!this.#paused && most > HIGH_WATER) {
      this.#paused = true;
      con.pause();
    } else if (this.#paused && most < LOW_WATER) {
      this.#paused = false;
      con.resume();
    }
  }

  /** Ends every attachment with `status` (once). */
  finish(status: ExitStatus): void {
    if (this.#ended) return;
    this.#ended = true;
    this.state = 'ended';
    for (const a of this.#attachments) a.end(status);
    this.#attachments.clear();
  }
}

/** What an attach token stands for. */
export interface AttachGrant {
  sessionId: string;
  user: string;
  readOnly: boolean;
}

/** The settings of SessionManager a config reload may change. */
export interface SessionSettings {
  ttlMs: number;
  readyTimeoutMs: number;
  maxPerUser: number;
  /** live sessions of everyone together */
  maxTotal: number;
  attachTokenTtlMs: number;
  /** of new sessions; a live session keeps the scrollback it has */
  scrollback: number;
  /** live attachments per session (each may hold its scrollback and a lag in memory) */
  maxAttachments: number;
}

export interface SessionManagerOptions extends SessionSettings {
  targets: () => readonly TargetConfig[];
  start: StartTarget;
  clock: Clock;
  log: Logger;
}

/** Whether `id` may open `target` (no groups = everyone). */
export function mayUseTarget(target: TargetConfig, id: Identity): boolean {
  return target.groups.length === 0 || id.groups.some((g) => target.groups.includes(g));
}

/** All sessions of the daemon. */
export class SessionManager {
  #o: SessionManagerOptions;
  readonly #sessions = new Map<string, Session>();
  #tokens: TokenStore<AttachGrant>;
  /** the last attach token issued per `${session} ${user}`: a new one replaces it */
  readonly #issued = new Map<string, string>();
  #closing = false;
  readonly #log: Logger;

  constructor(o: SessionManagerOptions) {
    this.#o = o;
    this.#log = o.log.child({ component: 'sessions' });
    this.#tokens = new TokenStore<AttachGrant>({ ttlMs: o.attachTokenTtlMs, clock: o.clock });
  }

  get size(): number {
    return this.#sessions.size;
  }

  /**
   * New limits from a reloaded config. Live sessions stay; the new ttl and per-user maximum
   * apply to them from now on. A changed attach_token_ttl drops the unused attach tokens (a
   * page gets a new one with its next GET).
   */
  configure(settings: SessionSettings): void {
    const tokenTtlChanged = settings.attachTokenTtlMs !== this.#o.attachTokenTtlMs;
    this.#o = { ...this.#o, ...settings };
    if (tokenTtlChanged) {
      this.#tokens = new TokenStore<AttachGrant>({
        ttlMs: settings.attachTokenTtlMs,
        clock: this.#o.clock,
      });
      this.#issued.clear();
    }
  }

  /** Sessions `id` created or may view. */
  list(id: Identity): Session[] {
    return [...this.#sessions.values()].filter(
      (s) => s.creator.user === id.user || s.viewers.has(id.user),
    );
  }

  /** Retry-After, in seconds: when the least recently heard of `sessions` expires (at least 1). */
  #untilOneExpires(sessions: readonly Session[]): string {
    const oldest = Math.min(...sessions.map((x) => x.lastHeartbeat));
    return String(Math.max(1, Math.ceil((oldest + this.#o.ttlMs - this.#o.clock()) / 1000)));
  }

  /**
   * The live session of `id` on `targetName`, or a new one (starting in the background).
   * 404 for an unknown target or one `id` may not use (no hint that it exists), 429 over the
   * per-user maximum, 503 over the daemon's.
   */
  create(id: Identity, targetName: string): { session: Session; reused: boolean } {
    if (this.#closing) {
      throw new HttpError('ServiceUnavailable', 'creating terminal: webterminal is stopping', {
        headers: { 'retry-after': '5' },
      });
    }
    const target = this.#o.targets().find((t) => t.name === targetName);
    if (target === undefined || !mayUseTarget(target, id)) {
      throw new HttpError('NotFound', `creating terminal: no target ${JSON.stringify(targetName)}`);
    }
    const live = [...this.#sessions.values()].filter((x) => x.state !== 'ended');
    const mine = live.filter((s) => s.creator.user === id.user);
    const existing = mine.find((s) => s.target.name === targetName);
    if (existing !== undefined) {
      existing.lastHeartbeat = this.#o.clock();
      return { session: existing, reused: true };
    }
    if (mine.length >= this.#o.maxPerUser) {
      throw new HttpError(
        'TooManyRequests',
        `creating terminal: ${id.user} has ${mine.length} sessions, the maximum`,
        { headers: { 'retry-after': this.#untilOneExpires(mine) } },
      );
    }
    if (live.length >= this.#o.maxTotal) {
      throw new HttpError(
        'ServiceUnavailable',
        `creating terminal: the server has ${live.length} sessions, its maximum ([sessions] max_total)`,
        { headers: { 'retry-after': this.#untilOneExpires(live) } },
      );
    }
    const s = new Session(id, target, this.#o.clock(), this.#o.scrollback);
    this.#sessions.set(s.id, s);
    const log = this.#log.child({ session: s.id, user: id.user, target: target.name });
    const ready = this.#o
      .start(target, { id: s.id, user: id }, { cols: 80, rows: 24 })
      .then((con) => {
        if (!this.#sessions.has(s.id)) {
          // deleted while starting: #remove, waiting for this start, kills it
          s.console = con;
          throw new Error('session was deleted while starting');
        }
        s.bind(con);
        s.state = 'ready';
        log.info({ pids: con.pids }, 'session ready');
        void con.done.then((status) => {
          log.info({ status }, 'session console ended');
          void this.#remove(s, status);
        });
      });
    ready.catch((err: unknown) => {
      log.warn({ err: (err as Error).message }, 'session failed to start');
      void this.#remove(s, {
        kind: 'error',
        message: `starting session: ${(err as Error).message}`,
      });
    });
    s.ready = ready;
    log.info('session created');
    return { session: s, reused: false };
  }

  /**
   * The session `sessionId` for `id`: 404 when unknown, 403 when `id` may not do `action`
   * (only the creator may write, heartbeat, share or delete; viewers may view).
   */
  get(sessionId: string, id: Identity, action: 'owner' | 'view'): Session {
    const s = this.#sessions.get(sessionId);
    if (s === undefined) {
      throw new HttpError('NotFound', `terminal ${sessionId} not found (ended or expired)`);
    }
    const isCreator = s.creator.user === id.user;
    if (!isCreator && !(action === 'view' && s.viewers.has(id.user))) {
      throw new HttpError('Forbidden', `terminal ${sessionId}: only its creator may do this`);
    }
    return s;
  }

  /** Resolves once `s` is ready; 504 after ready_timeout, 502 when it failed to start. */
  async waitReady(s: Session): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new HttpError(
            'GatewayTimeout',
            `terminal ${s.id} not ready within ${this.#o.readyTimeoutMs} ms`,
          ),
        );
      }, this.#o.readyTimeoutMs);
    });
    try {
      await Promise.race([s.ready, timeout]);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw new HttpError('BadGateway', `terminal ${s.id}: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
    if (s.state !== 'ready') throw new HttpError('NotFound', `terminal ${s.id} has ended`);
  }

  heartbeat(s: Session): void {
    s.lastHeartbeat = this.#o.clock();
  }

  /**
   * A one-time attach token for `user` on `s`. It replaces the unused one `user` got for `s`
   * before, so nobody holds more than one per session; 503 if the store is full all the same.
   */
  attachToken(s: Session, user: string): { token: string; readOnly: boolean; expiresInMs: number } {
    const readOnly = s.creator.user !== user;
    const key = `${s.id} ${user}`;
    const previous = this.#issued.get(key);
    if (previous !== undefined) {
      this.#tokens.take(previous);
      this.#issued.delete(key);
    }
    let token: string;
    try {
      token = this.#tokens.put({ sessionId: s.id, user, readOnly });
    } catch (err) {
      if (!(err instanceof TokenStoreFullError)) throw err;
      throw new HttpError(
        'ServiceUnavailable',
        `issuing an attach token for terminal ${s.id}: ${this.#tokens.maxInFlight} unused tokens of all users, the maximum`,
        { cause: err, headers: { 'retry-after': String(Math.ceil(err.retryAfterMs / 1000)) } },
      );
    }
    this.#issued.set(key, token);
    return { token, readOnly, expiresInMs: this.#tokens.ttlMs };
  }

  /**
   * Takes the attach token of `user` for session `sessionId` (once): 404 when unknown, used or
   * expired (or the session ended), 403 when issued for another session or user, 429 when the
   * session has max_attachments; a refused token stays for its owner.
   */
  takeAttachToken(
    token: string,
    sessionId: string,
    user: string,
  ): { grant: AttachGrant; session: Session } {
    const grant = this.#tokens.peek(token);
    if (grant === undefined) {
      throw new HttpError('NotFound', 'attach token unknown, used or expired');
    }
    if (grant.sessionId !== sessionId || grant.user !== user) {
      throw new HttpError('Forbidden', 'attach token was issued for another session or user');
    }
    const session = this.#sessions.get(sessionId);
    if (session === undefined) throw new HttpError('NotFound', `terminal ${sessionId} has ended`);
    if (session.attachments >= this.#o.maxAttachments) {
      throw new HttpError(
        'TooManyRequests',
        `attaching to terminal ${sessionId}: it has ${session.attachments} attachments, the ` +
          'maximum ([sessions] max_attachments); close one',
        { headers: { 'retry-after': '5' } },
      );
    }
    this.#tokens.take(token);
    if (this.#issued.get(`${sessionId} ${user}`) === token)
      this.#issued.delete(`${sessionId} ${user}`);
    return { grant, session };
  }

  /** The session a grant points at, if it still exists. */
  byId(sessionId: string): Session | undefined {
    return this.#sessions.get(sessionId);
  }

  /** Ends `s` now: its processes, its attachments, its record. */
  delete(s: Session, reason: string): Promise<void> {
    return this.#remove(s, { kind: 'error', message: reason });
  }

  /** Cleans up every session without a heartbeat for ttl; resolves once their processes ended. */
  async sweep(): Promise<number> {
    const now = this.#o.clock();
    const expired = [...this.#sessions.values()].filter(
      (s) => now - s.lastHeartbeat >= this.#o.ttlMs,
    );
    await Promise.all(
      expired.map((s) =>
        this.#remove(s, {
          kind: 'error',
          message: `session expired: no heartbeat for ${Math.round(this.#o.ttlMs / 1000)} s`,
        }),
      ),
    );
    return expired.length;
  }

  /**
   * Ends every session (daemon stop) and refuses new ones (503); resolves once their processes
   * ended, those of sessions still starting included.
   */
  async closeAll(): Promise<void> {
    this.#closing = true;
    await Promise.all(
      [...this.#sessions.values()].map((s) =>
        this.#remove(s, { kind: 'error', message: 'webterminal is stopping' }),
      ),
    );
  }

  async #remove(s: Session, status: ExitStatus): Promise<void> {
    const had = this.#sessions.delete(s.id);
    for (const key of this.#issued.keys()) {
      if (key.startsWith(`${s.id} `)) this.#issued.delete(key);
    }
    s.finish(status);
    if (had) {
      this.#log.info(
        { session: s.id, user: s.creator.user, target: s.target.name, status },
        'session cleaned up',
      );
    }
    // a session still starting has no console yet: wait for the start, kill what it made
    if (s.console === undefined) await s.ready.catch(() => undefined);
    await s.console?.kill();
  }
}
