// iptables/ip6tables rules in chains we own: desired state as data, diffed against
// `iptables-save -t TABLE`, applied as ONE `iptables-restore --noflush` document per table that
// drifted, so a sync with no drift makes no mutating call at all. Every add has a delete.
import { parseCidr } from './cidr.ts';
import type { NetDeps } from './tools.ts';

export type Family = 'ipv4' | 'ipv6';
export type TableName = 'raw' | 'filter' | 'mangle' | 'nat' | 'security';

/** A chain we own (name it with our prefix, e.g. `HOSTPLANE-APISERVER-PROXY`). */
export interface OwnedChain {
  name: string;
  /** built-in chains that get exactly one `-j name` rule, inserted first. */
  jumpFrom: readonly string[];
  /**
   * Rule specs after `-A name`, e.g. `-d 10.0.0.1/32 -p tcp --dport 443 -j NOTRACK`. Compared after
   * canonicalRule(); write them as iptables-save would print them when in doubt.
   */
  rules: readonly string[];
}

/** The chains we own in one table of one family. */
export interface RuleTable {
  family: Family;
  table: TableName;
  chains: readonly OwnedChain[];
}

/** The part of one `iptables-save -t TABLE` we look at. */
export interface SavedTable {
  /** every chain declared, built-in or not. */
  chains: string[];
  /** canonical rule specs per chain, in order. */
  rules: Map<string, string[]>;
}

/** One `*-restore --noflush` document for one table. */
export interface RestoreDoc {
  family: Family;
  table: TableName;
  doc: string;
}

// ---- canonical form -------------------------------------------------------------------------

/** Splits a rule spec like a shell would for iptables: whitespace, with "double quotes". */
export function tokenize(spec: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i]!;
    if (quoted) {
      if (c === '\\' && i + 1 < spec.length) cur += spec[++i]!;
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inToken = true;
    } else if (/\s/.test(c)) {
      if (inToken) out.push(cur);
      cur = '';
      inToken = false;
    } else {
      cur += c;
      inToken = true;
    }
  }
  if (quoted) throw new Error(`parsing rule ${JSON.stringify(spec)}: unterminated quote`);
  if (inToken) out.push(cur);
  return out;
}

function quote(tok: string): string {
  return tok === '' || /[\s"\\]/.test(tok) ? `"${tok.replace(/(["\\])/g, '\\$1')}"` : tok;
}

const BASE_OPTS: Record<string, string> = {
  '-s': '-s',
  '--source': '-s',
  '--src': '-s',
  '-d': '-d',
  '--destination': '-d',
  '--dst': '-d',
  '-i': '-i',
  '--in-interface': '-i',
  '-o': '-o',
  '--out-interface': '-o',
  '-p': '-p',
  '--protocol': '-p',
};
const BASE_ORDER = ['-s', '-d', '-i', '-o', '-p'];
const ALIASES: Record<string, string> = {
  '--destination-port': '--dport',
  '--source-port': '--sport',
  '--jump': '-j',
  '--goto': '-g',
  '--match': '-m',
};
/** options that load the protocol's implicit match (`-p tcp --dport 1` saves as `-m tcp`). */
const PROTO_OPTS = new Set(['--dport', '--sport', '--tcp-flags', '--syn', '--tcp-option']);
const PROTO_MATCHES = new Set(['tcp', 'udp', 'udplite', 'sctp', 'dccp']);

/**
 * A rule spec in the form iptables-save prints (nft backend, 1.8.x): base options first in the
 * order -s -d -i -o -p, host addresses with their /32 or /128, `-m tcp` before port options, long
 * option names shortened, and `-j NOTRACK` as `-j CT --notrack` (the same rule to the kernel;
 * iptables-save prints whichever was written, so both must compare equal).
 */
export function canonicalRule(spec: string): string {
  const toks = tokenize(spec);
  const base = new Map<string, string[]>();
  const rest: string[] = [];
  for (let i = 0; i < toks.length; i++) {
    let t = toks[i]!;
    let neg = false;
    if (t === '!' && i + 1 < toks.length && BASE_OPTS[toks[i + 1]!] !== undefined) {
      neg = true;
      t = toks[++i]!;
    }
    const b = BASE_OPTS[t];
    if (b !== undefined) {
      let v = toks[++i];
      if (v === undefined)
        throw new Error(`parsing rule ${JSON.stringify(spec)}: ${t} needs a value`);
      if (b === '-s' || b === '-d') v = parseCidr(v).text;
      if (b === '-p') v = v.toLowerCase();
      base.set(b, [...(neg ? ['!'] : []), b, v]);
      continue;
    }
    rest.push(ALIASES[t] ?? t);
  }
  const proto = base.get('-p')?.at(-1);
  if (proto !== undefined && PROTO_MATCHES.has(proto)) {
    const hasMatch = rest.some((t, i) => t === '-m' && rest[i + 1] === proto);
    const at = rest.findIndex((t) => PROTO_OPTS.has(t));
    if (!hasMatch && at >= 0) rest.splice(at, 0, '-m', proto);
  }
  const j = rest.findIndex((t, i) => t === '-j' && rest[i + 1] === 'NOTRACK');
  if (j >= 0) rest.splice(j, 2, '-j', 'CT', '--notrack');
  const out: string[] = [];
  for (const k of BASE_ORDER) out.push(...(base.get(k) ?? []));
  out.push(...rest);
  return out.map(quote).join(' ');
}

// ---- reading --------------------------------------------------------------------------------

/** Parses the `*table` block of `iptables-save -t table` output. */
export function parseSave(text: string, table: string): SavedTable {
  const saved: SavedTable = { chains: [], rules: new Map() };
  let inTable = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      inTable = line.slice(1) === table;
      continue;
    }
    if (!inTable) continue;
    if (line === 'COMMIT') {
      inTable = false;
      continue;
    }
    if (line.startsWith(':')) {
      const name = line.slice(1).split(/\s+/, 1)[0]!;
      saved.chains.push(name);
      saved.rules.set(name, saved.rules.get(name) ?? []);
      continue;
    }
    const m = /^-A\s+(\S+)\s*(.*)$/.exec(line);
    if (m === null) continue; // nothing else appears in save output
    const chain = m[1]!;
    const list = saved.rules.get(chain) ?? [];
    list.push(canonicalRule(m[2]!));
    saved.rules.set(chain, list);
  }
  return saved;
}

/** The built-in chains and user chains with rules that jump to `target`, with those rules. */
function jumpsTo(saved: SavedTable, target: string): { chain: string; spec: string }[] {
  const out: { chain: string; spec: string }[] = [];
  for (const [chain, rules] of saved.rules) {
    for (const spec of rules) {
      const t = tokenize(spec);
      const j = t.findIndex((x, i) => (x === '-j' || x === '-g') && t[i + 1] === target);
      if (j >= 0) out.push({ chain, spec });
    }
  }
  return out;
}

const PLAIN_JUMP = (target: string) => `-j ${target}`;

/**
 * Whether the jump from built-in `chain` to `target` comes before every rule that is not one of
 * our jumps from `chain` (several of our chains hooked into one built-in chain share the top, in
 * any order, so that no two syncs fight over it).
 */
function jumpIsFirst(
  saved: SavedTable,
  ours: readonly OwnedChain[],
  chain: string,
  target: string,
): boolean {
  const ourJump = (spec: string) =>
    ours.some((o) => o.jumpFrom.includes(chain) && spec === PLAIN_JUMP(o.name));
  for (const spec of saved.rules.get(chain) ?? []) {
    if (spec === PLAIN_JUMP(target)) return true;
    if (!ourJump(spec)) return false;
  }
  return false;
}

// ---- planning -------------------------------------------------------------------------------

function key(family: Family, table: string): string {
  return `${family}/${table}`;
}

/** The tables `desired` touches, each once, in first-seen order. */
export function tablesOf(desired: readonly RuleTable[]): { family: Family; table: TableName }[] {
  const seen = new Map<string, { family: Family; table: TableName }>();
  for (const t of desired) seen.set(key(t.family, t.table), { family: t.family, table: t.table });
  return [...seen.values()];
}

function chainsByTable(desired: readonly RuleTable[]): Map<string, OwnedChain[]> {
  const m = new Map<string, OwnedChain[]>();
  for (const t of desired) {
    const list = m.get(key(t.family, t.table)) ?? [];
    for (const c of t.chains) {
      if (list.some((x) => x.name === c.name)) {
        throw new Error(`planning rules: chain ${c.name} appears twice in ${t.family} ${t.table}`);
      }
      list.push(c);
    }
    m.set(key(t.family, t.table), list);
  }
  return m;
}

/**
 * The restore documents that bring `current` (per `family/table`, see readRules) to `desired`:
 * one per table that drifted, none when everything matches. A drifted chain is re-declared
 * (`:CHAIN - [0:0]` flushes it in --noflush mode) and refilled; jumps are added when missing,
 * moved back to the top when another rule got ahead of them, and removed when duplicated or
 * coming from a chain no longer listed.
 */
export function planRules(
  desired: readonly RuleTable[],
  current: ReadonlyMap<string, SavedTable>,
): RestoreDoc[] {
  const docs: RestoreDoc[] = [];
  for (const [k, chains] of chainsByTable(desired)) {
    const [family, table] = k.split('/') as [Family, TableName];
    const saved = current.get(k) ?? { chains: [], rules: new Map<string, string[]>() };
    const lines: string[] = [];
    for (const c of chains) {
      const want = c.rules.map(canonicalRule);
      const have = saved.chains.includes(c.name) ? (saved.rules.get(c.name) ?? []) : null;
      if (have === null || have.join('\n') !== want.join('\n')) {
        lines.push(`:${c.name} - [0:0]`, ...want.map((r) => `-A ${c.name} ${r}`));
      }
    }
    for (const c of chains) {
      // a jump from one of our chains to another is one of its rules, not a hook
      const jumps = jumpsTo(saved, c.name).filter(
        (j) => j.spec === PLAIN_JUMP(c.name) && !chains.some((o) => o.name === j.chain),
      );
      const from = new Set([...c.jumpFrom, ...jumps.map((j) => j.chain)]);
      for (const chain of from) {
        const count = jumps.filter((j) => j.chain === chain).length;
        const wanted = c.jumpFrom.includes(chain) ? 1 : 0;
        if (wanted === 1 && count === 1 && jumpIsFirst(saved, chains, chain, c.name)) continue;
        // `-D` removes the first match: remove every copy, then put the one wanted on top
        for (let i = 0; i < count; i++) lines.push(`-D ${chain} ${PLAIN_JUMP(c.name)}`);
        if (wanted === 1) lines.push(`-I ${chain} ${PLAIN_JUMP(c.name)}`);
      }
    }
    if (lines.length > 0) docs.push({ family, table, doc: renderDoc(table, lines) });
  }
  return docs;
}

/**
 * The restore documents that remove our chains (those of `desired` present in `current`) and
 * every rule jumping to them. None when nothing of ours is there.
 */
export function planRulesCleanup(
  desired: readonly RuleTable[],
  current: ReadonlyMap<string, SavedTable>,
): RestoreDoc[] {
  const docs: RestoreDoc[] = [];
  for (const [k, chains] of chainsByTable(desired)) {
    const [family, table] = k.split('/') as [Family, TableName];
    const saved = current.get(k);
    if (saved === undefined) continue;
    const ours = chains.filter((c) => saved.chains.includes(c.name));
    const lines: string[] = [];
    // jumps first: a referenced chain cannot be deleted
    for (const c of ours) {
      for (const j of jumpsTo(saved, c.name)) {
        if (!ours.some((o) => o.name === j.chain)) lines.push(`-D ${j.chain} ${j.spec}`);
      }
    }
    for (const c of ours) lines.push(`:${c.name} - [0:0]`);
    for (const c of ours) lines.push(`-X ${c.name}`);
    if (lines.length > 0) docs.push({ family, table, doc: renderDoc(table, lines) });
  }
  return docs;
}

function renderDoc(table: string, lines: readonly string[]): string {
  return `*${table}\n${lines.join('\n')}\nCOMMIT\n`;
}

// ---- applying -------------------------------------------------------------------------------

function saveArgv(deps: NetDeps, family: Family, table: string): string[] {
  const bin = family === 'ipv4' ? deps.tools.iptablesSave : deps.tools.ip6tablesSave;
  return [bin, '-t', table];
}

function restoreArgv(deps: NetDeps, family: Family): string[] {
  const bin = family === 'ipv4' ? deps.tools.iptablesRestore : deps.tools.ip6tablesRestore;
  // -w: wait for the xtables lock (legacy backend) instead of failing when another tool holds it
  return [bin, '-w', '5', '--noflush'];
}

/** Reads the tables `desired` touches, keyed `family/table`. */
export async function readRules(
  deps: NetDeps,
  desired: readonly RuleTable[],
): Promise<Map<string, SavedTable>> {
  const out = new Map<string, SavedTable>();
  for (const { family, table } of tablesOf(desired)) {
    const argv = saveArgv(deps, family, table);
    let text: string;
    try {
      text = (await deps.runner.run(argv)).stdout;
    } catch (err) {
      throw new Error(`reading ${family} ${table} rules: ${(err as Error).message}`, {
        cause: err,
      });
    }
    out.set(key(family, table), parseSave(text, table));
  }
  return out;
}

/** Applies documents, one restore call each. */
export async function applyRestoreDocs(deps: NetDeps, docs: readonly RestoreDoc[]): Promise<void> {
  for (const d of docs) {
    try {
      await deps.runner.run(restoreArgv(deps, d.family), { input: d.doc });
    } catch (err) {
      throw new Error(`applying ${d.family} ${d.table} rules: ${(err as Error).message}`, {
        cause: err,
      });
    }
    deps.log?.info({ family: d.family, table: d.table, doc: d.doc }, 'rules applied');
  }
}

/** Brings our chains to `desired`; resolves to the documents applied (none when in sync). */
export async function syncRules(
  deps: NetDeps,
  desired: readonly RuleTable[],
): Promise<RestoreDoc[]> {
  const docs = planRules(desired, await readRules(deps, desired));
  await applyRestoreDocs(deps, docs);
  return docs;
}

/** Removes our chains and the jumps to them; resolves to the documents applied. */
export async function cleanupRules(
  deps: NetDeps,
  desired: readonly RuleTable[],
): Promise<RestoreDoc[]> {
  const docs = planRulesCleanup(desired, await readRules(deps, desired));
  await applyRestoreDocs(deps, docs);
  return docs;
}
