// A stateful fake Runner for unit tests of code built on shared/net: it understands only the
// `ip` and `*tables-save` / `*tables-restore --noflush` forms shared/net uses, keeps the state
// they change, refuses anything else, and renders that state as sorted text.
import { ExecError } from '../exec/index.ts';
import type { RunOptions, RunResult, Runner, Spawned } from '../exec/types.ts';
import { parseCidr } from './cidr.ts';
import { canonicalRule, tokenize, type Family } from './rules.ts';
import { DEFAULT_NET_TOOLS, type NetTools } from './tools.ts';

const BUILTINS: Record<string, readonly string[]> = {
  raw: ['PREROUTING', 'OUTPUT'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

interface FakeLink {
  kind: string | null;
  up: boolean;
  addresses: string[];
}
/** chain name → rules (canonical specs); built-ins always present. */
type FakeTable = Map<string, string[]>;

export interface FakeNetCall {
  argv: readonly string[];
  input?: string;
  /** true for calls that change state (everything but `ip -j ... show` and `*-save`). */
  mutating: boolean;
}

export class FakeNetRunner implements Runner {
  readonly tools: NetTools;
  readonly calls: FakeNetCall[] = [];
  readonly links = new Map<string, FakeLink>();
  readonly tables = new Map<string, FakeTable>(); // key `family/table`

  constructor(opts: { tools?: NetTools; loUp?: boolean } = {}) {
    this.tools = opts.tools ?? DEFAULT_NET_TOOLS;
    this.links.set('lo', { kind: null, up: opts.loUp ?? true, addresses: [] });
  }

  /** Calls that changed (or tried to change) state. */
  mutations(): FakeNetCall[] {
    return this.calls.filter((c) => c.mutating);
  }

  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const [bin, ...args] = argv;
    const mutating = !(
      bin === this.tools.iptablesSave ||
      bin === this.tools.ip6tablesSave ||
      (bin === this.tools.ip && args.at(-1) === 'show')
    );
    const input = typeof opts.input === 'string' ? opts.input : opts.input?.toString('utf8');
    this.calls.push({ argv, ...(input === undefined ? {} : { input }), mutating });
    try {
      const stdout = this.#dispatch(bin ?? '', args, input ?? '');
      const okCodes = opts.okCodes ?? [0];
      if (!okCodes.includes(0)) throw new FakeFailure(0, '');
      return Promise.resolve({ argv, code: 0, signal: null, stdout, stderr: '', durationMs: 0 });
    } catch (err) {
      if (!(err instanceof FakeFailure))
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      if (opts.okCodes?.includes(err.code) === true && err.code !== 0) {
        return Promise.resolve({
          argv,
          code: err.code,
          signal: null,
          stdout: '',
          stderr: err.message,
          durationMs: 0,
        });
      }
      return Promise.reject(
        new ExecError(`exited ${err.code}: ${err.message}`, {
          argv,
          code: err.code,
          signal: null,
          stdout: '',
          stderr: err.message,
        }),
      );
    }
  }

  spawn(argv: readonly string[]): Spawned {
    throw new Error(`fake net runner: spawn is not supported (${argv.join(' ')})`);
  }

  /** The whole state, one sorted line per fact. */
  render(): string {
    const lines: string[] = [];
    for (const [name, l] of this.links) {
      lines.push(`link ${name}${l.kind === null ? '' : ` ${l.kind}`}${l.up ? ' up' : ' down'}`);
      for (const a of l.addresses) lines.push(`addr ${name} ${a}`);
    }
    for (const [k, t] of this.tables) {
      for (const [chain, rules] of t) {
        if (!isBuiltin(k, chain)) lines.push(`${k} :${chain}`);
        for (const r of rules) lines.push(`${k} -A ${chain} ${r}`);
      }
    }
    return lines.sort().join('\n');
  }

  /** Sets up state directly, e.g. to simulate drift: `fake.restore('ipv4', doc)`. */
  restore(family: Family, doc: string): void {
    this.#restore(family, doc);
  }

  #dispatch(bin: string, args: string[], input: string): string {
    if (bin === this.tools.ip) return this.#ip(args);
    if (bin === this.tools.iptablesSave) return this.#save('ipv4', args);
    if (bin === this.tools.ip6tablesSave) return this.#save('ipv6', args);
    if (bin === this.tools.iptablesRestore || bin === this.tools.ip6tablesRestore) {
      const rest = args.filter((a, i) => !(a === '-w' || args[i - 1] === '-w'));
      if (rest.length !== 1 || rest[0] !== '--noflush') unsupported(bin, args);
      this.#restore(bin === this.tools.iptablesRestore ? 'ipv4' : 'ipv6', input);
      return '';
    }
    return unsupported(bin, args);
  }

  #ip(args: string[]): string {
    const a = args.join(' ');
    if (a === '-j -d addr show') return JSON.stringify(this.#ipJson());
    let m: RegExpExecArray | null;
    if ((m = /^link add (\S+) type dummy$/.exec(a)) !== null) {
      if (this.links.has(m[1]!)) throw new FakeFailure(2, 'RTNETLINK answers: File exists');
      this.links.set(m[1]!, { kind: 'dummy', up: false, addresses: [] });
      return '';
    }
    if ((m = /^link set (\S+) up$/.exec(a)) !== null) {
      this.#link(m[1]!).up = true;
      return '';
    }
    if ((m = /^link del (\S+)$/.exec(a)) !== null) {
      this.#link(m[1]!);
      if (m[1] === 'lo') throw new FakeFailure(2, 'RTNETLINK answers: Operation not supported');
      this.links.delete(m[1]!);
      return '';
    }
    if ((m = /^addr (add|del) (\S+) dev (\S+)( nodad)?$/.exec(a)) !== null) {
      const link = this.#link(m[3]!);
      const cidr = parseCidr(m[2]!);
      if (m[4] !== undefined && cidr.family !== 6) unsupported(this.tools.ip, args);
      const i = link.addresses.indexOf(cidr.text);
      if (m[1] === 'add') {
        if (i >= 0) throw new FakeFailure(2, 'RTNETLINK answers: File exists');
        // IPv6 (unlike IPv4) keeps one entry per address, whatever its prefix
        if (
          cidr.family === 6 &&
          link.addresses.some((x) => parseCidr(x).address === cidr.address)
        ) {
          throw new FakeFailure(2, 'Error: ipv6: address already assigned.');
        }
        link.addresses.push(cidr.text);
      } else {
        if (i < 0) throw new FakeFailure(2, 'RTNETLINK answers: Cannot assign requested address');
        link.addresses.splice(i, 1);
      }
      return '';
    }
    return unsupported(this.tools.ip, args);
  }

  #link(name: string): FakeLink {
    const l = this.links.get(name);
    if (l === undefined) throw new FakeFailure(1, `Cannot find device "${name}"`);
    return l;
  }

  #ipJson(): unknown[] {
    let index = 0;
    return [...this.links].map(([name, l]) => ({
      ifindex: ++index,
      ifname: name,
      flags:
        name === 'lo'
          ? ['LOOPBACK', ...(l.up ? ['UP'] : [])]
          : l.up
            ? ['BROADCAST', 'UP']
            : ['BROADCAST'],
      ...(l.kind === null ? {} : { linkinfo: { info_kind: l.kind } }),
      addr_info: l.addresses.map((t) => {
        const c = parseCidr(t);
        return { family: c.family === 4 ? 'inet' : 'inet6', local: c.address, prefixlen: c.prefix };
      }),
    }));
  }

  #table(family: Family, table: string): FakeTable {
    const k = `${family}/${table}`;
    let t = this.tables.get(k);
    if (t === undefined) {
      const builtins = BUILTINS[table];
      if (builtins === undefined) throw new FakeFailure(2, `can't initialize table '${table}'`);
      t = new Map(builtins.map((c) => [c, []]));
      this.tables.set(k, t);
    }
    return t;
  }

  #save(family: Family, args: string[]): string {
    if (args.length !== 2 || args[0] !== '-t') unsupported('save', args);
    const table = args[1]!;
    const t = this.#table(family, table);
    const lines = ['# Generated by fake', `*${table}`];
    for (const chain of t.keys()) {
      lines.push(`:${chain} ${isBuiltin(`${family}/${table}`, chain) ? 'ACCEPT' : '-'} [0:0]`);
    }
    for (const [chain, rules] of t) for (const r of rules) lines.push(`-A ${chain} ${r}`);
    lines.push('COMMIT', '# Completed', '');
    return lines.join('\n');
  }

  /** Applies a --noflush document all or nothing, like the real one. */
  #restore(family: Family, doc: string): void {
    const work = new Map(
      [...this.tables].map(([k, t]) => [k, new Map([...t].map(([c, r]) => [c, [...r]]))]),
    );
    const saved = new Map(this.tables);
    this.tables.clear();
    for (const [k, t] of work) this.tables.set(k, t);
    try {
      let t: FakeTable | null = null;
      let name = '';
      for (const [n, raw] of doc.split('\n').entries()) {
        const line = raw.trim();
        const fail = (why: string): never => {
          throw new FakeFailure(2, `${why}\nError occurred at line: ${n + 1}`);
        };
        if (line === '' || line.startsWith('#')) continue;
        if (line.startsWith('*')) {
          name = line.slice(1);
          t = this.#table(family, name);
          continue;
        }
        if (t === null) fail('no table given');
        const table = t!;
        if (line === 'COMMIT') {
          t = null;
          continue;
        }
        if (line.startsWith(':')) {
          const chain = line.slice(1).split(/\s+/, 1)[0]!;
          if (!isBuiltin(`${family}/${name}`, chain)) table.set(chain, []); // declare = flush
          continue;
        }
        const toks = tokenize(line);
        const [op, chain] = toks;
        if (chain === undefined) fail(`bad line ${line}`);
        if (op === '-X') {
          if (!table.has(chain!)) fail(`Chain '${chain!}' does not exist`);
          const used = [...table.values()].some((rs) => rs.some((r) => targetOf(r) === chain));
          if (used || (table.get(chain!) ?? []).length > 0) {
            fail(`Chain '${chain!}' is not empty or in use`);
          }
          table.delete(chain!);
          continue;
        }
        const spec = canonicalRule(line.slice(line.indexOf(chain!) + chain!.length));
        const rules = table.get(chain!);
        if (rules === undefined) fail(`Chain '${chain!}' does not exist`);
        const target = targetOf(spec);
        if (target !== null && !TARGETS.has(target) && !table.has(target)) {
          fail(`Chain '${target}' does not exist`);
        }
        if (op === '-A') rules!.push(spec);
        else if (op === '-I') rules!.unshift(spec);
        else if (op === '-D') {
          const i = rules!.indexOf(spec);
          if (i < 0) fail('Bad rule (does a matching rule exist in that chain?)');
          rules!.splice(i, 1);
        } else fail(`unsupported line ${line}`);
      }
      if (t !== null) throw new FakeFailure(2, 'COMMIT expected');
    } catch (err) {
      this.tables.clear();
      for (const [k, v] of saved) this.tables.set(k, v);
      throw err;
    }
  }
}

class FakeFailure extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** targets that are not chains (the ones our rules and tests use). */
const TARGETS = new Set(['ACCEPT', 'DROP', 'RETURN', 'REJECT', 'CT', 'NOTRACK', 'LOG', 'MARK']);

function targetOf(spec: string): string | null {
  const t = tokenize(spec);
  const i = t.findIndex((x) => x === '-j' || x === '-g');
  return i >= 0 ? (t[i + 1] ?? null) : null;
}

function isBuiltin(k: string, chain: string): boolean {
  const table = k.split('/')[1] ?? '';
  return BUILTINS[table]?.includes(chain) === true;
}

function unsupported(bin: string, args: readonly string[]): never {
  throw new Error(`fake net runner: unsupported call ${[bin, ...args].join(' ')}`);
}
