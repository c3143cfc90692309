// The sidecar's desired state as shared/net data: the link and addresses it keeps, the chains it
// owns, and — because cleanup must remove only what the sidecar itself added — the ownership
// record that turns into the cleanup's desired state.
import {
  parseCidr,
  type CurrentLink,
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

/** What the sidecar created, so cleanup removes exactly that (persisted between runs). */
export interface Owned {
  /** the dummy link we created, if any */
  link: string | null;
  /** canonical `address/prefix` of the addresses we added */
  addresses: readonly string[];
}

export const NOTHING_OWNED: Owned = Object.freeze({ link: null, addresses: [] });

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

/** What a cleanup removes: our dummy link (its addresses go with it) or the addresses we added. */
export function linksToCleanup(want: Desired, owned: Owned): DesiredLinks {
  const link = owned.link !== null && owned.link !== LOOPBACK ? owned.link : null;
  return {
    links: link === null ? [] : [{ name: link, kind: 'dummy' }],
    addresses: owned.addresses.map((cidr) => ({ dev: link ?? want.link, cidr })),
  };
}

/** `owned` after the `ip` call `args` succeeded. */
export function ownedAfter(owned: Owned, args: IpArgs): Owned {
  const [obj, verb, name] = args;
  if (name === undefined) return owned;
  if (obj === 'link' && verb === 'add') return { ...owned, link: name };
  if (obj === 'link' && verb === 'del') return NOTHING_OWNED;
  if (obj === 'addr' && verb === 'add' && !owned.addresses.includes(name)) {
    return { ...owned, addresses: [...owned.addresses, name] };
  }
  if (obj === 'addr' && verb === 'del') {
    return { ...owned, addresses: owned.addresses.filter((c) => c !== name) };
  }
  return owned;
}
