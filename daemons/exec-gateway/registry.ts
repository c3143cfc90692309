// Where machines and machine pools come from. The TOML registry reads the config; a shared store
// (for several gateways) implements the same interface.
import type { AddressType, GatewayConfig } from './config.ts';

export interface MachineRecord {
  namespace: string;
  name: string;
  pool?: string | undefined;
}

export interface PoolRecord {
  name: string;
  port: number;
  addresses: readonly { type: AddressType; address: string }[];
}

/** Lookups the gateway needs; undefined means "does not exist". */
export interface Registry {
  getMachine(namespace: string, name: string): Promise<MachineRecord | undefined>;
  getPool(name: string): Promise<PoolRecord | undefined>;
}

/** A registry over the `[[machines]]` and `[[pools]]` of a config. */
export function tomlRegistry(config: Pick<GatewayConfig, 'machines' | 'pools'>): Registry {
  const machines = new Map(config.machines.map((m) => [`${m.namespace}/${m.name}`, m]));
  const pools = new Map(config.pools.map((p) => [p.name, p]));
  return {
    getMachine: (namespace, name) => Promise.resolve(machines.get(`${namespace}/${name}`)),
    getPool: (name) => Promise.resolve(pools.get(name)),
  };
}

/** The first address of the pool by preferred type (a pure function); undefined when none fits. */
export function pickAddress(
  pool: PoolRecord,
  preferred: readonly AddressType[],
): string | undefined {
  for (const type of preferred) {
    const a = pool.addresses.find((x) => x.type === type && x.address.trim() !== '');
    if (a !== undefined) return a.address.trim();
  }
  return undefined;
}
