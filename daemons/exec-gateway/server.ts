// exec-gateway: authenticate the user by client certificate (401), authorize by policy (403),
// find the machine (404) and its pool (409 when it has none or the pool is unknown), pick the
// pool's address (503 when none is usable) and proxy to that pool's machinepoollet with the
// gateway's own certificate, the user named in the identity headers.
import type { IncomingMessage } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { HttpError } from '../../shared/http/errors.ts';
import { certificateIdentity, identityHeaders } from '../../shared/http/identity.ts';
import { isAllowed, type PolicyRule } from '../../shared/http/policy.ts';
import { proxyUpgrade } from '../../shared/http/proxy.ts';
import {
  checkWebSocketHandshake,
  closeServer,
  createExecServer,
  execPath,
  listen,
  parseExecPath,
  requestUrl,
} from '../../shared/http/server.ts';
import {
  clientContextOptions,
  readCertificates,
  serverContextOptions,
  type CertificateMaterial,
} from '../../shared/tls/index.ts';
import type { Logger } from '../../shared/log/index.ts';
import type { AddressType, GatewayConfig } from './config.ts';
import { pickAddress, tomlRegistry, type Registry } from './registry.ts';
import { V5_PROTOCOL } from '../../shared/stream/v5.ts';

/** A running gateway. */
export interface Gateway {
  readonly port: number;
  sessionCount(): number;
  reload(next: GatewayConfig): Promise<void>;
  close(graceMs?: number): Promise<void>;
}

export interface GatewayDeps {
  log: Logger;
  /** default: the TOML registry of the config (replaced on reload) */
  registry?: Registry;
}

/** The certificate, key and CA named by a `[tls]`-style config table. */
function readTlsTable(t: {
  ca_file: string;
  cert_file: string;
  key_file: string;
}): Promise<CertificateMaterial> {
  return readCertificates({ ca: t.ca_file, cert: t.cert_file, key: t.key_file });
}

/** Starts the gateway as `config` says. */
export async function startGateway(config: GatewayConfig, deps: GatewayDeps): Promise<Gateway> {
  const log = deps.log.child({ component: 'exec' });
  const [serverTls, upstreamTls] = await Promise.all([
    readTlsTable(config.tls),
    readTlsTable(config.upstream_tls),
  ]);
  const state: {
    policy: readonly PolicyRule[];
    registry: Registry;
    preferred: readonly AddressType[];
    upstream: ConnectionOptions;
    proxyTimeoutMs: number;
  } = {
    proxyTimeoutMs: config.proxy.timeout,
    policy: config.policy,
    registry: deps.registry ?? tomlRegistry(config),
    preferred: config.preferred_address_types,
    upstream: clientContextOptions(upstreamTls),
  };
  const { server, sessions } = createExecServer({
    tls: serverTls,
    log,
    authenticate: certificateIdentity,
    serve,
  });

  async function serve(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = requestUrl(req);
    const target = parseExecPath(url.pathname);
    if (target === undefined) throw new HttpError('NotFound', `no route ${url.pathname}`);
    const id = certificateIdentity(socket);
    checkWebSocketHandshake(req, V5_PROTOCOL);
    const nn = `${target.namespace}/${target.name}`;
    if (!isAllowed(state.policy, id, target.namespace, target.name)) {
      throw new HttpError('Forbidden', `user ${id.user} may not exec into machine ${nn}`);
    }
    const machine = await state.registry.getMachine(target.namespace, target.name);
    if (machine === undefined) throw new HttpError('NotFound', `machine ${nn} not found`);
    if (machine.pool === undefined) {
      throw new HttpError('Conflict', `machine ${nn} is not assigned to a machine pool`);
    }
    const pool = await state.registry.getPool(machine.pool);
    if (pool === undefined) {
      throw new HttpError(
        'Conflict',
        `machine pool ${machine.pool} of machine ${nn} does not exist`,
      );
    }
    const address = pickAddress(pool, state.preferred);
    if (address === undefined) {
      throw new HttpError(
        'ServiceUnavailable',
        `machine pool ${pool.name} has no address of the types ${state.preferred.join(', ')}`,
      );
    }
    const host = isIP(address) === 6 ? `[${address}]` : address;
    const upstreamUrl = new URL(`https://${host}:${pool.port}${execPath(target)}${url.search}`);
    log.info(
      { user: id.user, machine: nn, pool: pool.name, upstream: upstreamUrl.host },
      'exec session starting',
    );
    const outcome = await proxyUpgrade(
      req,
      socket,
      head,
      {
        url: upstreamUrl,
        tls: state.upstream,
        headers: identityHeaders(id),
        timeoutMs: state.proxyTimeoutMs,
      },
      log,
    );
    log.info({ user: id.user, machine: nn, outcome: outcome.kind }, 'exec session ended');
  }

  const addr: AddressInfo = await listen(server, config.listen.host, config.listen.port);
  log.info({ address: addr.address, port: addr.port }, 'gateway serving');
  return {
    port: addr.port,
    sessionCount: () => sessions.size,
    async reload(next) {
      const [s, u] = await Promise.all([readTlsTable(next.tls), readTlsTable(next.upstream_tls)]);
      server.setSecureContext(serverContextOptions(s));
      state.upstream = clientContextOptions(u);
      state.policy = next.policy;
      state.preferred = next.preferred_address_types;
      state.proxyTimeoutMs = next.proxy.timeout;
      if (deps.registry === undefined) state.registry = tomlRegistry(next);
    },
    close: (graceMs = 5_000) => closeServer(server, sessions, graceMs),
  };
}
