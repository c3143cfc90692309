// The machine runtime's gRPC API on a unix socket: ListMachines from the config, Exec that stores
// the request under a one-time token and answers the token URL of the streaming server.
import { chmod, lstat, unlink } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../shared/log/index.ts';
import { TokenStoreFullError, type TokenStore } from '../../shared/stream/index.ts';
import {
  loadMachineRuntime,
  NAME_LABEL,
  NAMESPACE_LABEL,
  type MachineRuntimeHandlers,
} from '../../shared/stream/iri.ts';
import type { MachineConfig } from './config.ts';

/** What a token stands for until the streaming server takes it. */
export interface PendingExec {
  machineId: string;
  tty: boolean;
}

/** Trailing metadata key of a RESOURCE_EXHAUSTED Exec: milliseconds until a slot frees. */
export const RETRY_AFTER_MS_KEY = 'retry-after-ms';

export interface RuntimeDeps {
  machines: () => readonly MachineConfig[];
  store: TokenStore<PendingExec>;
  /** `http://127.0.0.1:PORT`, the streaming server */
  streamingBase: () => string;
  log: Logger;
}

/** The MachineRuntime handlers. */
export function runtimeHandlers(deps: RuntimeDeps): MachineRuntimeHandlers {
  return {
    ListMachines(call, callback) {
      const selector = call.request.filter?.labelSelector ?? {};
      const machines = deps
        .machines()
        .map((m) => ({
          metadata: { id: m.id, labels: { [NAMESPACE_LABEL]: m.namespace, [NAME_LABEL]: m.name } },
        }))
        .filter((m) =>
          Object.entries(selector).every(
            ([k, v]) => (m.metadata.labels as Record<string, string>)[k] === v,
          ),
        );
      callback(null, { machines });
    },
    Exec(call, callback) {
      const { machineId, tty } = call.request;
      const machine = deps.machines().find((m) => m.id === machineId);
      if (machine === undefined) {
        callback({
          code: grpc.status.NOT_FOUND,
          details: `exec: no machine with id ${JSON.stringify(machineId)}`,
        });
        return;
      }
      try {
        const token = deps.store.put({ machineId, tty });
        deps.log.info({ machineId, tty }, 'exec token issued');
        callback(null, { url: `${deps.streamingBase()}/exec/${token}` });
      } catch (err) {
        if (err instanceof TokenStoreFullError) {
          const metadata = new grpc.Metadata();
          metadata.set(RETRY_AFTER_MS_KEY, String(err.retryAfterMs));
          deps.log.warn(
            { machineId, max: deps.store.maxInFlight },
            'exec refused: tokens in flight at maximum',
          );
          callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: err.message, metadata });
          return;
        }
        callback({ code: grpc.status.INTERNAL, details: (err as Error).message });
      }
    },
  };
}

/** Serves the runtime on `socketPath` (a stale socket file is replaced; mode 0660). */
export async function serveRuntime(
  socketPath: string,
  handlers: MachineRuntimeHandlers,
): Promise<grpc.Server> {
  const { MachineRuntime } = loadMachineRuntime();
  const server = new grpc.Server();
  server.addService(MachineRuntime.service, handlers);
  const st = await lstat(socketPath).catch(() => null);
  if (st !== null) {
    if (!st.isSocket()) {
      throw new Error(`serving runtime on ${socketPath}: exists and is not a socket`);
    }
    await unlink(socketPath);
  }
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err === null) resolve();
      else reject(new Error(`serving runtime on ${socketPath}: ${err.message}`, { cause: err }));
    });
  });
  // the machinepoollet's group may connect; nobody else
  await chmod(socketPath, 0o660);
  return server;
}
