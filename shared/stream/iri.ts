// The machine runtime API (proto/iri/machine/v1alpha1/api.proto), typed, for the machinepoollet
// (client) and machinebroker (server): both reach it here since daemons never import each other.
import * as grpc from '@grpc/grpc-js';
import { loadProto } from '../proto/index.ts';
import type { ProtoGrpcType } from '../proto/generated/iri.machine.v1alpha1.api.ts';
import type { ExecResponse__Output } from '../proto/generated/iri/machine/v1alpha1/ExecResponse.ts';
import type { Machine__Output } from '../proto/generated/iri/machine/v1alpha1/Machine.ts';
import type {
  MachineRuntimeClient,
  MachineRuntimeHandlers,
} from '../proto/generated/iri/machine/v1alpha1/MachineRuntime.ts';

export type { MachineRuntimeClient, MachineRuntimeHandlers, Machine__Output as RuntimeMachine };

/** Label of a runtime machine naming the namespace of the machine it serves. */
export const NAMESPACE_LABEL = 'machinepoollet.ironcore.dev/machine-namespace';
/** Label of a runtime machine naming the machine it serves. */
export const NAME_LABEL = 'machinepoollet.ironcore.dev/machine-name';

/** The loaded `iri.machine.v1alpha1` package. */
export function loadMachineRuntime(protoDir?: string): ProtoGrpcType['iri']['machine']['v1alpha1'] {
  // proto-loader returns an untyped object; the generated type describes exactly this file.
  const pkg = loadProto('iri/machine/v1alpha1/api.proto', protoDir) as unknown as ProtoGrpcType;
  return pkg.iri.machine.v1alpha1;
}

/** A promise-shaped client of a runtime listening on a unix socket. */
export interface RuntimeClient {
  listMachines(labels: Readonly<Record<string, string>>): Promise<Machine__Output[]>;
  exec(machineId: string, tty: boolean): Promise<string>;
  close(): void;
}

/** Connects (lazily) to the runtime's unix socket at `socketPath`; each call times out after `timeoutMs`. */
export function createRuntimeClient(socketPath: string, timeoutMs = 5_000): RuntimeClient {
  const { MachineRuntime } = loadMachineRuntime();
  const client = new MachineRuntime(`unix:${socketPath}`, grpc.credentials.createInsecure());
  const deadline = (): grpc.CallOptions => ({ deadline: Date.now() + timeoutMs });
  return {
    listMachines: (labels) =>
      new Promise((resolve, reject) => {
        client.listMachines({ filter: { labelSelector: labels } }, deadline(), (err, res) => {
          if (err !== null) reject(err);
          else resolve(res?.machines ?? []);
        });
      }),
    exec: (machineId, tty) =>
      new Promise((resolve, reject) => {
        client.exec({ machineId, tty }, deadline(), (err, res?: ExecResponse__Output) => {
          if (err !== null) reject(err);
          else if (res === undefined || res.url === '') {
            reject(new Error(`exec of runtime machine ${machineId}: runtime returned no url`));
          } else resolve(res.url);
        });
      }),
    close: () => {
      client.close();
    },
  };
}
