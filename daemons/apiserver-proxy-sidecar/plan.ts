// The sidecar's desired state as shared/net data: the link and addresses it keeps, the chains it
// owns, and — because cleanup must remove only what the sidecar itself added — the ownership
// record that turns into the cleanup's desired state.
import {
  parseCidr,
  type CurrentLink,
  type Family,
  type TableName,
  type Cidr,
  type DesiredLinks,
  type IpArgs,
  type OwnedChain,
  type RuleTable,
} from '../../shared/net/index.ts';

/** The config keys the plan reads. */
export interface PlanConfig {
  ip_address: readonly string[];
  kubernetes_service_ip_address: readonly string[];
  interface: string;
  port: number;
  setup_iptables: boolean;
}

/** What the sidecar keeps in place, computed once from the config. */
export interface Desired {
  link: string;
  /** every address (both keys), canonical, duplicates dropped */
  addresses: readonly Cidr[];
  /** our chains, for the families that have an `ip_address`; empty when rules are off */
  rules: readonly RuleTable[];
}

/** Prefix of every chain the sidecar owns. */
export const CHAIN_PREFIX = 'HP-APIPROXY-';

const LOOPBACK = 'lo';

export function desiredState(cfg: PlanConfig): Desired {
  const uniq = (ips: readonly string[]): Cidr[] => {
    const seen = new Map<string, Cidr>();
    for (const ip of ips) {
      const c = parseCidr(ip);
      if (!seen.has(c.text)) seen.set(c.text, c);
    }
    return [...seen.values()];
  };
  const ruleAddresses = cfg.setup_iptables ? uniq(cfg.ip_address) : [];
  const rules: RuleTable[] = [];
  for (const family of [4, 6] as const) {
    const mine = ruleAddresses.filter((a) => a.family === family);
    if (mine.length > 0) rules.push(...ruleTables(mine, cfg.port));
  }
  return {
    link: cfg.interface,
    addresses: uniq([...cfg.ip_address, ...cfg.kubernetes_service_ip_address]),
    rules,
  };
}

/**
 * The raw (NOTRACK) and filter (ACCEPT) chains for addresses of ONE family: conntrack never sees
 * the proxy's flows (the addresses are local), and the filter table lets them through.
 */
export function ruleTables(addresses: readonly Cidr[], port: number): RuleTable[] {
  const family = addresses[0]?.family === 6 ? 'ipv6' : 'ipv4';
  const tcp = '-p tcp -m tcp';
  const chain = (hook: string, rules: string[]): OwnedChain => ({
    name: `${CHAIN_PREFIX}${hook}`,
    jumpFrom: [hook],
    rules,
  });
  const each = (f: (a: string) => string[]): string[] => addresses.flatMap((a) => f(a.text));
  return [
    {
      family,
      table: 'raw',
      chains: [
        chain(
          'PREROUTING',
          each((a) => [`-d ${a} ${tcp} --dport ${port} -j NOTRACK`]),
        ),
        chain(
          'OUTPUT',
          each((a) => [
            `-d ${a} ${tcp} --dport ${port} -j NOTRACK`,
            `-s ${a} ${tcp} --sport ${port} -j NOTRACK`,
          ]),
        ),
      ],
    },
    {
      family,
      table: 'filter',
      chains: [
        chain(
          'INPUT',
          each((a) => [`-d ${a} ${tcp} --dport ${port} -j ACCEPT`]),
        ),
        chain(
          'OUTPUT',
          each((a) => [`-s ${a} ${tcp} --sport ${port} -j ACCEPT`]),
        ),
      ],
    },
  ];
}

/** An address the sidecar added, with the device it added it to. */
export interface OwnedAddress {
  dev: string;
  /** canonical `address/prefix` */
  cidr: string;
}

/** A chain the sidecar created. */
export interface OwnedChainRef {
  family: Family;
  table: TableName;
  chain: string;
}

/** What the sidecar created, so cleanup removes exactly that (persisted between runs). */
export interface Owned {
  /** the dummy link we created, if any */
  link: string | null;
  addresses: readonly OwnedAddress[];
  chains: readonly OwnedChainRef[];
}

export const NOTHING_OWNED: Owned = Object.freeze({ link: null, addresses: [], chains: [] });

/** The chains `rules` declares, as ownership records. */
export function chainsOf(rules: readonly RuleTable[]): OwnedChainRef[] {
  return rules.flatMap((t) =>
    t.chains.map((c) => ({ family: t.family, table: t.table, chain: c.name })),
  );
}

function sameChain(a: OwnedChainRef, b: OwnedChainRef): boolean {
  return a.family === b.family && a.table === b.table && a.chain === b.chain;
}

/** `owned` with `chains` added (those not listed yet). */
export function withChains(owned: Owned, chains: readonly OwnedChainRef[]): Owned {
  const add = chains.filter(
    (c, i) =>
      !owned.chains.some((o) => sameChain(o, c)) && chains.findIndex((x) => sameChain(x, c)) === i,
  );
  return add.length === 0 ? owned : { ...owned, chains: [...owned.chains, ...add] };
}

/** `owned` without `chains`. */
export function withoutChains(owned: Owned, chains: readonly OwnedChainRef[]): Owned {
  return { ...owned, chains: owned.chains.filter((o) => !chains.some((c) => sameChain(o, c))) };
}

/** The recorded chains `want` no longer declares (a family or table dropped from the config). */
export function staleChains(owned: Owned, want: Desired): OwnedChainRef[] {
  const wanted = chainsOf(want.rules);
  return owned.chains.filter((o) => !wanted.some((w) => sameChain(o, w)));
}

/** Chains to remove as shared/net RuleTables (no rules or hooks: cleanup needs only the names). */
export function chainTables(chains: readonly OwnedChainRef[]): RuleTable[] {
  return chains.map((c) => ({
    family: c.family,
    table: c.table,
    chains: [{ name: c.chain, jumpFrom: [], rules: [] }],
  }));
}

/** The state file's format version; version 1 (no `version` key) listed bare CIDRs. */
export const STATE_VERSION = 2;

/** `owned` as the state file's text. */
export function renderOwned(owned: Owned): string {
  return `${JSON.stringify({ version: STATE_VERSION, ...owned })}\n`;
}

/**
 * The state file's content as `Owned`, with a warning for every entry it cannot use. Version 1
 * entries (a CIDR without its device) come back in `legacy`, canonical, for migrateLegacy.
 */
export function parseOwned(raw: unknown): { owned: Owned; legacy: string[]; warnings: string[] } {
  const warnings: string[] = [];
  const legacy: string[] = [];
  const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const link = typeof r['link'] === 'string' ? r['link'] : null;
  const addresses: OwnedAddress[] = [];
  for (const a of Array.isArray(r['addresses']) ? (r['addresses'] as unknown[]) : []) {
    if (typeof a === 'string') {
      const parsed = tryCidr(a);
      if (parsed === undefined) warnings.push(`ignoring an address entry that is not a CIDR: ${a}`);
      else if (!legacy.includes(parsed.text)) legacy.push(parsed.text);
      continue;
    }
    const { dev, cidr } = (typeof a === 'object' && a !== null ? a : {}) as Record<string, unknown>;
    const parsed = typeof cidr === 'string' ? tryCidr(cidr) : undefined;
    if (typeof dev !== 'string' || parsed === undefined) {
      warnings.push(`ignoring an address entry that is not {dev, cidr}: ${JSON.stringify(a)}`);
      continue;
    }
    addresses.push({ dev, cidr: parsed.text });
  }
  const chains: OwnedChainRef[] = [];
  for (const c of Array.isArray(r['chains']) ? (r['chains'] as unknown[]) : []) {
    const { family, table, chain } = (typeof c === 'object' && c !== null ? c : {}) as Record<
      string,
      unknown
    >;
    if (
      (family !== 'ipv4' && family !== 'ipv6') ||
      (table !== 'raw' && table !== 'filter') ||
      typeof chain !== 'string' ||
      !chain.startsWith(CHAIN_PREFIX)
    ) {
      warnings.push(`ignoring a chain entry that is not one of ours: ${JSON.stringify(c)}`);
      continue;
    }
    chains.push({ family, table, chain });
  }
  return { owned: { link, addresses, chains }, legacy, warnings };
}

function tryCidr(text: string): Cidr | undefined {
  try {
    return parseCidr(text);
  } catch {
    return undefined;
  }
}

/**
 * `owned` with the version-1 addresses `legacy` migrated to {dev, cidr}: the older version added
 * every address on the configured interface `dev`, so one that is there now is claimed on it; one
 * that is not (gone, or the interface changed since) is `dropped`, as we cannot tell where it went.
 */
export function migrateLegacy(
  owned: Owned,
  legacy: readonly string[],
  dev: string,
  current: readonly CurrentLink[],
): { owned: Owned; claimed: string[]; dropped: string[] } {
  const on = current.find((l) => l.name === dev)?.addresses ?? [];
  const claimed = legacy.filter((c) => on.includes(c));
  const dropped = legacy.filter((c) => !on.includes(c));
  const add = claimed
    .filter((cidr) => !owned.addresses.some((a) => a.dev === dev && a.cidr === cidr))
    .map((cidr) => ({ dev, cidr }));
  return {
    owned: add.length === 0 ? owned : { ...owned, addresses: [...owned.addresses, ...add] },
    claimed,
    dropped,
  };
}

/**
 * What is ours now: everything either record (the file, and what this process knows it added)
 * lists that is still there. Something that is gone is no longer ours: if it comes back, it is
 * whoever put it back's (or ours again when we re-add it).
 */
export function reconcileOwned(file: Owned, memory: Owned, current: readonly CurrentLink[]): Owned {
  const byName = new Map(current.map((l) => [l.name, l]));
  const link = [file.link, memory.link].find((l) => l !== null && byName.has(l)) ?? null;
  const addresses: OwnedAddress[] = [];
  for (const a of [...file.addresses, ...memory.addresses]) {
    if (addresses.some((x) => x.dev === a.dev && x.cidr === a.cidr)) continue;
    if (byName.get(a.dev)?.addresses.includes(a.cidr) === true) addresses.push(a);
  }
  // chains are not checked here (that needs the tables read); cleanup skips absent ones
  return { link, addresses, chains: withChains(file, memory.chains).chains };
}

/**
 * What a sync keeps, as shared/net's DesiredLinks. The interface is created as a dummy (and kept
 * up) only when it is missing or we created it before: an existing link is not ours to change.
 */
export function linksToSync(
  want: Desired,
  current: readonly CurrentLink[],
  owned: Owned,
): DesiredLinks {
  const exists = current.some((l) => l.name === want.link);
  const ours = want.link !== LOOPBACK && (!exists || owned.link === want.link);
  return {
    links: ours ? [{ name: want.link, kind: 'dummy' }] : [],
    addresses: want.addresses.map((a) => ({ dev: want.link, cidr: a.text })),
  };
}

/**
 * What a cleanup removes: our dummy link (its addresses go with it) and the addresses we added,
 * each on the device we added it to.
 */
export function linksToCleanup(owned: Owned): DesiredLinks {
  const link = owned.link !== null && owned.link !== LOOPBACK ? owned.link : null;
  return {
    links: link === null ? [] : [{ name: link, kind: 'dummy' }],
    addresses: owned.addresses,
  };
}

/** `owned` with what the `ip` call `args` is about to add (recorded before the call is made). */
export function ownedBefore(owned: Owned, args: IpArgs): Owned {
  const [obj, verb, name, , dev] = args;
  if (name === undefined) return owned;
  if (obj === 'link' && verb === 'add' && owned.link !== name) return { ...owned, link: name };
  if (obj === 'addr' && verb === 'add' && dev !== undefined) {
    if (owned.addresses.some((a) => a.dev === dev && a.cidr === name)) return owned;
    return { ...owned, addresses: [...owned.addresses, { dev, cidr: name }] };
  }
  return owned;
}

/** `owned` after the `ip` call `args` removed something. */
export function ownedAfter(owned: Owned, args: IpArgs): Owned {
  const [obj, verb, name, , dev] = args;
  if (name === undefined) return owned;
  if (obj === 'link' && verb === 'del') {
    return {
      ...owned,
      link: owned.link === name ? null : owned.link,
      addresses: owned.addresses.filter((a) => a.dev !== name),
    };
  }
  if (obj === 'addr' && verb === 'del') {
    return {
      ...owned,
      addresses: owned.addresses.filter((a) => !(a.dev === dev && a.cidr === name)),
    };
  }
  return owned;
}
