// Who is calling: the verified client certificate of a TLS connection (CN = user, O = groups),
// and identity headers that only a trusted proxy's certificate may set.
import type { IncomingHttpHeaders } from 'node:http';
import { TLSSocket } from 'node:tls';
import { peerIdentity } from '../tls/index.ts';
import { HttpError } from './errors.ts';

/** An authenticated caller. */
export interface Identity {
  user: string;
  groups: readonly string[];
}

/** Header a trusted proxy puts the end user in. */
export const REMOTE_USER_HEADER = 'x-remote-user';
/**
 * Header a trusted proxy puts the end user's groups in, comma-separated. Both headers carry
 * percent-encoded UTF-8 (encodeURIComponent), so that a CN outside Latin-1 can be sent at all and
 * a comma inside one group's name cannot make two groups of it at the next hop.
 */
export const REMOTE_GROUP_HEADER = 'x-remote-group';

/**
 * The identity of the peer's certificate; HttpError Unauthorized when there is none or the CA
 * didn't sign it (the server runs with `rejectUnauthorized: false` so that it can say so in a body).
 */
export function certificateIdentity(socket: unknown): Identity {
  if (!(socket instanceof TLSSocket)) {
    throw new HttpError('Unauthorized', 'authenticating caller: not a TLS connection');
  }
  const cert = socket.getPeerCertificate();
  if (Object.keys(cert).length === 0) {
    throw new HttpError('Unauthorized', 'authenticating caller: no client certificate presented');
  }
  if (!socket.authorized) {
    const why = String(socket.authorizationError);
    throw new HttpError(
      'Unauthorized',
      `authenticating caller: client certificate rejected: ${why}`,
    );
  }
  const peer = peerIdentity(socket);
  if (peer === null) {
    throw new HttpError('Unauthorized', 'authenticating caller: client certificate has no CN');
  }
  return { user: peer.cn, groups: peer.o };
}

/**
 * The effective identity of a request: the end user named in the identity headers when the
 * certificate belongs to one of `trustedProxies` (by CN), else the certificate's own identity.
 * Identity headers from anyone else are refused rather than ignored, so a mistake is visible.
 */
export function requestIdentity(
  socket: unknown,
  headers: IncomingHttpHeaders,
  trustedProxies: readonly string[],
): Identity & { via?: string } {
  const peer = certificateIdentity(socket);
  const user = headers[REMOTE_USER_HEADER];
  const groupHeader = headers[REMOTE_GROUP_HEADER];
  if (user === undefined && groupHeader === undefined) return peer;
  if (!trustedProxies.includes(peer.user)) {
    throw new HttpError(
      'Forbidden',
      `authenticating caller: ${peer.user} is not a trusted proxy and may not set ${REMOTE_USER_HEADER}`,
    );
  }
  if (typeof user !== 'string' || user === '') {
    throw new HttpError('Unauthorized', `authenticating caller: proxy ${peer.user} sent no user`);
  }
  const decode = (header: string, value: string): string => {
    try {
      return decodeURIComponent(value);
    } catch {
      throw new HttpError(
        'Unauthorized',
        `authenticating caller: proxy ${peer.user} sent ${header} ${JSON.stringify(value)}, which is not percent-encoded UTF-8`,
      );
    }
  };
  const groups = (typeof groupHeader === 'string' ? groupHeader.split(',') : [])
    .map((g) => g.trim())
    .filter((g) => g !== '')
    .map((g) => decode(REMOTE_GROUP_HEADER, g));
  return { user: decode(REMOTE_USER_HEADER, user), groups, via: peer.user };
}

/** Identity headers for the next hop (see REMOTE_GROUP_HEADER for the encoding). */
export function identityHeaders(id: Identity): Record<string, string> {
  const h: Record<string, string> = { [REMOTE_USER_HEADER]: encodeURIComponent(id.user) };
  if (id.groups.length > 0) {
    h[REMOTE_GROUP_HEADER] = id.groups.map((g) => encodeURIComponent(g)).join(',');
  }
  return h;
}
