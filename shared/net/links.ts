// Links and addresses: desired state as data, a plan of `ip` argv computed from `ip -j` output,
// applied once. Every add has a delete; `lo` and addresses we were not given are never removed.
import { parseCidr } from './cidr.ts';
import type { NetDeps } from './tools.ts';

export interface LinkSpec {
  name: string;
  kind: 'dummy';
}
export interface AddressSpec {
  dev: string;
  /** `10.0.0.1/32`, `fd00::1/128`; a bare address means a host prefix. */
  cidr: string;
}
/** What the caller owns: links to create when absent, addresses to keep on them (or on lo). */
export interface DesiredLinks {
  links?: readonly LinkSpec[];
  addresses?: readonly AddressSpec[];
}

/** One interface as `ip -j -d addr show` reports it. */
export interface CurrentLink {
  name: string;
  /** `dummy`, `veth`...; null for plain devices such as lo. */
  kind: string | null;
  up: boolean;
  /** canonical `address/prefix` of every address on it. */
  addresses: string[];
}

/** One `ip` call of a plan, without the binary: `['addr', 'add', '10.0.0.1/32', 'dev', 'lo']`. */
export type IpArgs = readonly string[];

const LOOPBACK = 'lo';

interface IpAddrJson {
  ifname?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string };
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

/** Parses `ip -j -d addr show`. */
export function parseIpAddr(json: string): CurrentLink[] {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (err) {
    throw new Error(`parsing ip -j addr output: ${(err as Error).message}`, { cause: err });
  }
  if (!Array.isArray(data)) throw new Error('parsing ip -j addr output: not a JSON array');
  const out: CurrentLink[] = [];
  for (const l of data as IpAddrJson[]) {
    if (typeof l.ifname !== 'string') continue;
    const addresses: string[] = [];
    for (const a of l.addr_info ?? []) {
      if ((a.family === 'inet' || a.family === 'inet6') && a.local !== undefined) {
        addresses.push(parseCidr(`${a.local}/${a.prefixlen ?? ''}`).text);
      }
    }
    out.push({
      name: l.ifname,
      kind: l.linkinfo?.info_kind ?? null,
      up: (l.flags ?? []).includes('UP'),
      addresses,
    });
  }
  return out;
}

/**
 * The `ip` calls that make `current` hold everything in `desired` (empty when it already does). An
 * address counts as present on its device with any prefix.
 */
export function planLinks(desired: DesiredLinks, current: readonly CurrentLink[]): IpArgs[] {
  const byName = new Map(current.map((l) => [l.name, l]));
  const plan: IpArgs[] = [];
  const created = new Set<string>();
  for (const link of desired.links ?? []) {
    const have = byName.get(link.name);
    if (have === undefined) {
      plan.push(['link', 'add', link.name, 'type', link.kind]);
      created.add(link.name);
    }
    if (have?.up !== true) plan.push(['link', 'set', link.name, 'up']);
  }
  for (const a of desired.addresses ?? []) {
    const cidr = parseCidr(a.cidr);
    const have = byName.get(a.dev);
    if (have === undefined && !created.has(a.dev)) {
      throw new Error(
        `planning address ${cidr.text} on ${a.dev}: no such link, and it is not one we create`,
      );
    }
    // present with any prefix: the kernel refuses a second IPv6 entry for it, and either way
    // the address is there (and, having been there first, not ours)
    if (have?.addresses.some((t) => parseCidr(t).address === cidr.address) === true) continue;
    // nodad: usable at once instead of "tentative" for a second or two (it is ours alone)
    plan.push(['addr', 'add', cidr.text, 'dev', a.dev, ...(cidr.family === 6 ? ['nodad'] : [])]);
  }
  return plan;
}

/**
 * The `ip` calls that remove what planLinks would add and is present now: our addresses, then
 * our dummy links (never lo, never a link of another kind that happened to have the name).
 */
export function planLinksCleanup(desired: DesiredLinks, current: readonly CurrentLink[]): IpArgs[] {
  const byName = new Map(current.map((l) => [l.name, l]));
  const removed = new Set<string>();
  for (const link of desired.links ?? []) {
    const have = byName.get(link.name);
    if (link.name !== LOOPBACK && have !== undefined && have.kind === link.kind) {
      removed.add(link.name);
    }
  }
  const plan: IpArgs[] = [];
  for (const a of desired.addresses ?? []) {
    if (removed.has(a.dev)) continue; // goes with its link
    const cidr = parseCidr(a.cidr);
    if (byName.get(a.dev)?.addresses.includes(cidr.text) === true) {
      plan.push(['addr', 'del', cidr.text, 'dev', a.dev]);
    }
  }
  for (const name of removed) plan.push(['link', 'del', name]);
  return plan;
}

/** A plan as text, one `ip ...` line per call (for tests and logs). */
export function renderIpPlan(plan: readonly IpArgs[]): string {
  return plan.map((args) => `ip ${args.join(' ')}`).join('\n');
}

/** Current links and addresses. */
export async function readLinks(deps: NetDeps): Promise<CurrentLink[]> {
  const r = await deps.runner.run([deps.tools.ip, '-j', '-d', 'addr', 'show']);
  return parseIpAddr(r.stdout);
}

/** Brings links and addresses to `desired`; resolves to the calls made (none when in sync). */
export async function syncLinks(deps: NetDeps, desired: DesiredLinks): Promise<IpArgs[]> {
  const plan = planLinks(desired, await readLinks(deps));
  await applyIpPlan(deps, plan);
  return plan;
}

/** Removes what syncLinks adds for `desired`; resolves to the calls made. */
export async function cleanupLinks(deps: NetDeps, desired: DesiredLinks): Promise<IpArgs[]> {
  const plan = planLinksCleanup(desired, await readLinks(deps));
  await applyIpPlan(deps, plan);
  return plan;
}

/** Runs a plan in order, stopping at the first failure with what was being done. */
export async function applyIpPlan(deps: NetDeps, plan: readonly IpArgs[]): Promise<void> {
  for (const args of plan) {
    try {
      await deps.runner.run([deps.tools.ip, ...args]);
    } catch (err) {
      throw new Error(`${describeIp(args)}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (plan.length > 0) deps.log?.info({ plan: renderIpPlan(plan) }, 'links and addresses applied');
}

/** `addr add 10.0.0.1/32 dev lo` → `adding address 10.0.0.1/32 to lo`. */
function describeIp(args: IpArgs): string {
  const [obj, verb, a, , b] = args;
  if (obj === 'addr' && verb === 'add') return `adding address ${a ?? ''} to ${b ?? ''}`;
  if (obj === 'addr' && verb === 'del') return `removing address ${a ?? ''} from ${b ?? ''}`;
  if (obj === 'link' && verb === 'add') return `creating ${args[4] ?? ''} link ${a ?? ''}`;
  if (obj === 'link' && verb === 'set') return `bringing up link ${a ?? ''}`;
  if (obj === 'link' && verb === 'del') return `removing link ${a ?? ''}`;
  return `running ip ${args.join(' ')}`;
}
