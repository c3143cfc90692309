// The machinepoollet's exec endpoint: authenticate the caller's certificate (401), authorize the
// effective user (403), find the runtime machine for namespace/name (404), ask the runtime for a
// session URL over gRPC (429 when it is full, 502 when it is unreachable) and proxy to that URL.
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { HttpError } from '../../shared/http/errors.ts';
import { certificateIdentity, requestIdentity } from '../../shared/http/identity.ts';
import { isAllowed, type PolicyRule } from '../../shared/http/policy.ts';
import { proxyUpgrade } from '../../shared/http/proxy.ts';
import {
  checkWebSocketHandshake,
  closeServer,
  createExecServer,
  listen,
  parseExecPath,
  requestUrl,
  wantsTty,
} from '../../shared/http/server.ts';
import { readCertificates, serverContextOptions } from '../../shared/tls/index.ts';
import type { Logger } from '../../shared/log/index.ts';
import {
  createRuntimeClient,
  NAME_LABEL,
  NAMESPACE_LABEL,
  type RuntimeClient,
} from '../../shared/stream/iri.ts';
import type { PoolletConfig } from './config.ts';
import { V5_PROTOCOL } from '../../shared/stream/v5.ts';

/** A running poollet. */
export interface Poollet {
  readonly port: number;
  sessionCount(): number;
  /** new certificates, policy and trusted proxies for requests from now on */
  reload(next: PoolletConfig): Promise<void>;
  close(graceMs?: number): Promise<void>;
}

/** The HTTP answer to a failed runtime call. */
export function runtimeErrorToHttp(err: unknown, what: string): HttpError {
  const e = err as Partial<grpc.ServiceError>;
  const details = e.details ?? (err instanceof Error ? err.message : String(err));
  if (e.code === grpc.status.RESOURCE_EXHAUSTED) {
    const ms = Number(e.metadata?.get('retry-after-ms')[0] ?? 1000);
    const seconds = String(Math.max(1, Math.ceil((Number.isFinite(ms) ? ms : 1000) / 1000)));
    return new HttpError(
      'TooManyRequests',
      `${what}: runtime is at its session limit: ${details}`,
      {
        headers: { 'retry-after': seconds },
        cause: err,
      },
    );
  }
  if (e.code === grpc.status.NOT_FOUND) {
    return new HttpError('NotFound', `${what}: ${details}`, { cause: err });
  }
  if (e.code === grpc.status.UNAVAILABLE) {
    return new HttpError('BadGateway', `${what}: runtime unreachable: ${details}`, { cause: err });
  }
  if (e.code === grpc.status.DEADLINE_EXCEEDED) {
    return new HttpError('GatewayTimeout', `${what}: runtime did not answer in time`, {
      cause: err,
    });
  }
  return new HttpError('BadGateway', `${what}: runtime failed: ${details}`, { cause: err });
}

/** Starts the poollet as `config` says. */
export async function startPoollet(config: PoolletConfig, deps: { log: Logger }): Promise<Poollet> {
  const log = deps.log.child({ component: 'exec' });
  const files = (t: PoolletConfig['tls']) => ({
    ca: t.ca_file,
    cert: t.cert_file,
    key: t.key_file,
  });
  const material = await readCertificates(files(config.tls));
  const state: {
    /** the config last applied (at start or by reload) */
    config: PoolletConfig;
    policy: readonly PolicyRule[];
    trusted: readonly string[];
    runtime: RuntimeClient;
  } = {
    config,
    policy: config.policy,
    trusted: config.auth.trusted_proxies,
    runtime: createRuntimeClient(config.runtime.socket, config.runtime.timeout),
  };
  const { server, sessions } = createExecServer({
    tls: material,
    log,
    authenticate: certificateIdentity,
    serve,
  });

  async function serve(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = requestUrl(req);
    const target = parseExecPath(url.pathname);
    if (target === undefined) throw new HttpError('NotFound', `no route ${url.pathname}`);
    const id = requestIdentity(socket, req.headers, state.trusted);
    checkWebSocketHandshake(req, V5_PROTOCOL);
    const machine = `${target.namespace}/${target.name}`;
    if (!isAllowed(state.policy, id, target.namespace, target.name)) {
      throw new HttpError('Forbidden', `user ${id.user} may not exec into machine ${machine}`);
    }
    const runtime = state.runtime;
    let machines;
    try {
      machines = await runtime.listMachines({
        [NAMESPACE_LABEL]: target.namespace,
        [NAME_LABEL]: target.name,
      });
    } catch (err) {
      throw runtimeErrorToHttp(err, `finding machine ${machine}`);
    }
    const runtimeId = machines[0]?.metadata?.id;
    if (runtimeId === undefined) {
      throw new HttpError('NotFound', `machine ${machine} not found in this pool's runtime`);
    }
    let sessionUrl: string;
    try {
      sessionUrl = await runtime.exec(runtimeId, wantsTty(url));
    } catch (err) {
      throw runtimeErrorToHttp(err, `exec into machine ${machine}`);
    }
    log.info({ user: id.user, via: id.via, machine, runtimeId }, 'exec session starting');
    const outcome = await proxyUpgrade(
      req,
      socket,
      head,
      { url: new URL(sessionUrl), timeoutMs: state.config.proxy.timeout },
      log,
    );
    log.info({ user: id.user, machine, outcome: outcome.kind }, 'exec session ended');
  }

  const addr: AddressInfo = await listen(server, config.listen.host, config.listen.port);
  log.info({ address: addr.address, port: addr.port }, 'poollet serving');
  return {
    port: addr.port,
    sessionCount: () => sessions.size,
    async reload(next) {
      server.setSecureContext(serverContextOptions(await readCertificates(files(next.tls))));
      state.policy = next.policy;
      state.trusted = next.auth.trusted_proxies;
      const { socket, timeout } = state.config.runtime;
      if (next.runtime.socket !== socket || next.runtime.timeout !== timeout) {
        const old = state.runtime;
        state.runtime = createRuntimeClient(next.runtime.socket, next.runtime.timeout);
        old.close();
      }
      state.config = next;
    },
    async close(graceMs = 5_000) {
      await closeServer(server, sessions, graceMs);
      state.runtime.close();
    },
  };
}
