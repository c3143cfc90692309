import { findBinary } from '../exec/index.ts';
import type { Logger } from '../log/index.ts';
import type { Runner } from '../exec/types.ts';

/** Absolute paths of the binaries shared/net drives (put them all in the runner's allowlist). */
export interface NetTools {
  ip: string;
  iptablesSave: string;
  iptablesRestore: string;
  ip6tablesSave: string;
  ip6tablesRestore: string;
}

/** What every shared/net function needs. */
export interface NetDeps {
  runner: Runner;
  tools: NetTools;
  log?: Logger;
}

/** Debian's paths, and what the fake runner answers to. */
export const DEFAULT_NET_TOOLS: Readonly<NetTools> = Object.freeze({
  ip: '/usr/sbin/ip',
  iptablesSave: '/usr/sbin/iptables-save',
  iptablesRestore: '/usr/sbin/iptables-restore',
  ip6tablesSave: '/usr/sbin/ip6tables-save',
  ip6tablesRestore: '/usr/sbin/ip6tables-restore',
});

/** Finds the tools on this machine (at startup, to build the runner's allowlist). */
export async function findNetTools(): Promise<NetTools> {
  const [ip, iptablesSave, iptablesRestore, ip6tablesSave, ip6tablesRestore] = await Promise.all([
    findBinary('ip'),
    findBinary('iptables-save'),
    findBinary('iptables-restore'),
    findBinary('ip6tables-save'),
    findBinary('ip6tables-restore'),
  ]);
  return { ip, iptablesSave, iptablesRestore, ip6tablesSave, ip6tablesRestore };
}

/** The tools as a list, for `createRunner({ allow })`. */
export function netToolList(t: NetTools): string[] {
  return [t.ip, t.iptablesSave, t.iptablesRestore, t.ip6tablesSave, t.ip6tablesRestore];
}
