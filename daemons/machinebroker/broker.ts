// machinebroker assembled: the token store, the streaming server on loopback and the runtime's
// gRPC API on a unix socket. main.ts and the tests both start it through startBroker.
import type { AddressInfo } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { closeServer, listen } from '../../shared/http/server.ts';
import { clientContextOptions, readCertificates } from '../../shared/tls/index.ts';
import type { Logger } from '../../shared/log/index.ts';
import { TokenStore, type Clock } from '../../shared/stream/index.ts';
import type { BrokerConfig } from './config.ts';
import type { SandboxDeps } from './console.ts';
import { runtimeHandlers, serveRuntime, type PendingExec } from './runtime.ts';
import { createStreamingServer } from './streaming.ts';

export interface BrokerDeps {
  log: Logger;
  sandbox: SandboxDeps;
  clock?: Clock;
}

/** A running broker. */
export interface Broker {
  /** `http://127.0.0.1:PORT`: where token URLs point */
  readonly streamingBase: string;
  readonly socketPath: string;
  readonly store: TokenStore<PendingExec>;
  /** open streaming sessions */
  sessionCount(): number;
  /** new machines (and their TLS files) for sessions from now on; throws, changing nothing, when [runtime], [streaming] or [sandbox] changed (they take a restart) */
  reload(next: BrokerConfig): Promise<void>;
  /** stops both listeners, ends sessions still open after `graceMs` */
  close(graceMs?: number): Promise<void>;
}

async function loadUpstreamTls(config: BrokerConfig): Promise<Map<string, ConnectionOptions>> {
  const out = new Map<string, ConnectionOptions>();
  for (const m of config.machines) {
    if (m.target.type !== 'upstream') continue;
    try {
      const t = m.target;
      out.set(
        m.id,
        clientContextOptions(
          await readCertificates({ ca: t.ca_file, cert: t.cert_file, key: t.key_file }),
        ),
      );
    } catch (err) {
      throw new Error(
        `loading upstream credentials of machine ${m.id}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }
  return out;
}

/** Starts the broker as `config` says. */
export async function startBroker(config: BrokerConfig, deps: BrokerDeps): Promise<Broker> {
  const log = deps.log;
  const state = { config, upstreamTls: await loadUpstreamTls(config) };
  const store = new TokenStore<PendingExec>({
    ttlMs: config.streaming.token_ttl,
    maxInFlight: config.streaming.max_in_flight,
    ...(deps.clock === undefined ? {} : { clock: deps.clock }),
  });
  const streaming = createStreamingServer({
    store,
    machines: () => state.config.machines,
    sandbox: deps.sandbox,
    upstreamTls: () => state.upstreamTls,
    log,
  });
  const { server, sessions } = streaming;
  const addr: AddressInfo = await listen(
    server,
    config.streaming.listen.host,
    config.streaming.listen.port,
  );
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const streamingBase = `http://${host}:${addr.port}`;
  let grpcServer: grpc.Server;
  try {
    grpcServer = await serveRuntime(
      config.runtime.socket,
      runtimeHandlers({
        machines: () => state.config.machines,
        store,
        streamingBase: () => streamingBase,
        log,
      }),
    );
  } catch (err) {
    server.close();
    throw err;
  }
  log.info(
    { streaming: streamingBase, socket: config.runtime.socket, machines: config.machines.length },
    'broker serving',
  );
  return {
    streamingBase,
    socketPath: config.runtime.socket,
    store,
    sessionCount: () => sessions.size,
    async reload(next) {
      // the listeners, the token store and the sandbox binaries are set up once
      const fixed = (['runtime', 'streaming', 'sandbox'] as const).filter(
        (k) => JSON.stringify(next[k]) !== JSON.stringify(config[k]),
      );
      if (fixed.length > 0) {
        throw new Error(
          `applying the new configuration: [${fixed.join('], [')}] changed, which takes a restart ` +
            '(systemctl restart machinebroker); nothing was changed',
        );
      }
      const upstreamTls = await loadUpstreamTls(next);
      state.config = next;
      state.upstreamTls = upstreamTls;
    },
    async close(graceMs = 5_000) {
      await Promise.all([
        new Promise<void>((resolve) => {
          grpcServer.tryShutdown(() => {
            resolve();
          });
        }),
        closeServer(server, sessions, graceMs, () =>
          streaming.endConsoles('the runtime is stopping'),
        ),
      ]);
    },
  };
}
