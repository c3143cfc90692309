// Who is calling. In order: a login cookie (browsers, after POST /api/login), a bearer token
// from the config (stored as SHA-256), a verified client certificate (CN = user, O = groups), or
// a trusted reverse proxy's identity headers (the proxy itself proves who it is by certificate).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { HttpError } from '../../shared/http/errors.ts';
import { requestIdentity, type Identity } from '../../shared/http/identity.ts';
import type { Clock } from '../../shared/stream/index.ts';

export const COOKIE_NAME = 'hp_webterminal';

/** How the caller proved who they are. */
export type AuthMethod = 'cookie' | 'bearer' | 'certificate' | 'proxy';

export interface Caller extends Identity {
  method: AuthMethod;
  /** SHA-256 (hex) of the bearer token the caller proved itself with, directly or at login */
  tokenSha256?: string;
}

export interface TokenEntry {
  user: string;
  groups: readonly string[];
  sha256: string;
}

export interface AuthOptions {
  tokens: () => readonly TokenEntry[];
  trustedProxies: () => readonly string[];
  /** whether client certificates are requested (a client CA is configured) */
  certificates: () => boolean;
  cookieTtlMs: () => number;
  clock: Clock;
}

const sha256 = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

/** Login cookies and the rest of authentication. */
export class Authenticator {
  readonly #o: AuthOptions;
  // keyed by the SHA-256 of the cookie value: a heap dump holds no usable cookie. A login made
  // with a bearer token follows that token: removed from the config (reload), the login ends;
  // its user or groups changed, the login has the new ones.
  readonly #logins = new Map<
    string,
    { id: Identity; tokenSha256: string | undefined; expiresAt: number }
  >();

  constructor(o: AuthOptions) {
    this.#o = o;
  }

  /** The identity a bearer token stands for, or undefined. */
  bearer(token: string): Identity | undefined {
    return this.#byHash(sha256(token));
  }

  /** The identity of the configured token whose SHA-256 is `h`, or undefined. */
  #byHash(h: Buffer): Identity | undefined {
    let found: Identity | undefined;
    // compare against every entry, in constant time each: timing says nothing about the list
    for (const t of this.#o.tokens()) {
      if (timingSafeEqual(h, Buffer.from(t.sha256, 'hex'))) {
        found ??= { user: t.user, groups: [...t.groups] };
      }
    }
    return found;
  }

  /** Starts a browser login for `id` (made with the bearer token `tokenSha256`); returns the cookie value. */
  login(id: Identity, tokenSha256?: string): string {
    this.#sweep();
    const value = randomBytes(32).toString('base64url');
    this.#logins.set(sha256(value).toString('hex'), {
      id,
      tokenSha256,
      expiresAt: this.#o.clock() + this.#o.cookieTtlMs(),
    });
    return value;
  }

  logout(req: IncomingMessage): void {
    const v = cookie(req, COOKIE_NAME);
    if (v !== undefined) this.#logins.delete(sha256(v).toString('hex'));
  }

  /** The caller of `req`; HttpError Unauthorized when it proves nothing. */
  authenticate(req: IncomingMessage): Caller {
    const c = cookie(req, COOKIE_NAME);
    if (c !== undefined) {
      const key = sha256(c).toString('hex');
      const e = this.#logins.get(key);
      if (e !== undefined && e.expiresAt > this.#o.clock()) {
        if (e.tokenSha256 === undefined) return { ...e.id, method: 'cookie' };
        const id = this.#byHash(Buffer.from(e.tokenSha256, 'hex'));
        if (id !== undefined) return { ...id, method: 'cookie', tokenSha256: e.tokenSha256 };
        // its token is gone from the config
        this.#logins.delete(key);
      }
    }
    const authz = req.headers.authorization;
    if (authz !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(authz);
      const h = m === null ? undefined : sha256(m[1]!);
      const id = h === undefined ? undefined : this.#byHash(h);
      if (id === undefined || h === undefined) {
        throw new HttpError('Unauthorized', 'authenticating caller: bearer token not accepted', {
          headers: { 'www-authenticate': 'Bearer' },
        });
      }
      return { ...id, method: 'bearer', tokenSha256: h.toString('hex') };
    }
    const socket = req.socket as Partial<TLSSocket>;
    if (this.#o.certificates() && typeof socket.getPeerCertificate === 'function') {
      const cert = socket.getPeerCertificate();
      if (Object.keys(cert).length > 0) {
        const id = requestIdentity(socket, req.headers, this.#o.trustedProxies());
        return {
          user: id.user,
          groups: id.groups,
          method: id.via === undefined ? 'certificate' : 'proxy',
        };
      }
    }
    throw new HttpError(
      'Unauthorized',
      c !== undefined
        ? 'authenticating caller: login expired, log in again'
        : 'authenticating caller: no login cookie, bearer token or client certificate',
      { headers: { 'www-authenticate': 'Bearer' } },
    );
  }

  #sweep(): void {
    const now = this.#o.clock();
    for (const [k, e] of this.#logins) if (e.expiresAt <= now) this.#logins.delete(k);
  }
}

/** The value of cookie `name` in `req`, if any. */
export function cookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** Hashes a bearer token the way the config stores it. */
export function hashToken(token: string): string {
  return sha256(token).toString('hex');
}
