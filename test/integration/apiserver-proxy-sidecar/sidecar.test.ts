// apiserver-proxy-sidecar in network namespaces the test creates (never the host's interfaces):
// addresses and exact rules, zero-mutation resync, repair after `ip addr del`, cleanup that leaves
// the netns as found, IPv6, dummy-link creation, and the real daemon process.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { createRunner } from '../../../shared/exec/index.ts';
import type { Runner } from '../../../shared/exec/types.ts';
import { createMemoryLogger, silentLogger } from '../../../shared/log/index.ts';
import { findNetTools, type NetTools } from '../../../shared/net/index.ts';
import { sidecarSchema } from '../../../daemons/apiserver-proxy-sidecar/config.ts';
import { runSidecar } from '../../../daemons/apiserver-proxy-sidecar/run.ts';

const root = process.getuid?.() === 0;
const MAIN = path.resolve('daemons/apiserver-proxy-sidecar/main.ts');

let tools: NetTools;
let host: Runner;
let dir: string;
let dummyOk = false;
const namespaces: string[] = [];

/** A Runner that runs every call inside network namespace `ns`. */
function inNetns(real: Runner, ns: string): Runner {
  return {
    run: (argv, opts) => real.run([tools.ip, 'netns', 'exec', ns, ...argv], opts),
    spawn: (argv, opts) => real.spawn([tools.ip, 'netns', 'exec', ns, ...argv], opts),
  };
}

/** A fresh netns with lo up, as on a real host; deleted in after(). */
async function newNetns(): Promise<{ ns: string; run: Runner }> {
  const ns = `hp-sc-${randomBytes(4).toString('hex')}`;
  await host.run([tools.ip, 'netns', 'add', ns]);
  namespaces.push(ns);
  const run = inNetns(host, ns);
  await run.run([tools.ip, 'link', 'set', 'lo', 'up']);
  return { ns, run };
}

/** Everything the sidecar could touch in a netns, as text. */
async function snapshot(run: Runner): Promise<string> {
  const out = async (argv: string[]) => (await run.run(argv)).stdout;
  const strip = (s: string) =>
    s
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
  const parts = [await out([tools.ip, '-d', 'addr', 'show'])];
  for (const t of ['raw', 'filter']) {
    parts.push(strip(await out([tools.iptablesSave, '-t', t])));
    parts.push(strip(await out([tools.ip6tablesSave, '-t', t])));
  }
  return parts.join('\n');
}

async function addresses(run: Runner, dev: string): Promise<string[]> {
  const r = await run.run([tools.ip, '-j', 'addr', 'show', 'dev', dev]);
  const links = JSON.parse(r.stdout) as { addr_info: { local: string; prefixlen: number }[] }[];
  return links.flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
}

/** Our chains' lines in iptables-save order (jumps and rules), for exact comparison. */
async function ourRules(run: Runner, bin: string, table: string): Promise<string[]> {
  const text = (await run.run([bin, '-t', table])).stdout;
  return text.split('\n').filter((l) => l.includes('HP-APIPROXY-') && !l.startsWith(':'));
}

/** Audit records of calls that changed state (drops the `ip netns exec NAME` prefix). */
function mutating(records: Record<string, unknown>[]): string[][] {
  return records
    .filter((r) => r['component'] === 'exec' && r['msg'] === 'exec')
    .map((r) => (r['argv'] as string[]).slice(4))
    .filter(
      (argv) =>
        !(argv.at(-1) === 'show' || /-save$/.test(argv[0] ?? '') || argv.includes('monitor')),
    );
}

/** `p`, or a rejection naming `what` after `ms` (a loop that never gets ready must not hang). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`no ${what} within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

function config(extra: Record<string, unknown>) {
  return sidecarSchema.parse({
    state_file: path.join(dir, `${randomBytes(4).toString('hex')}.json`),
    ...extra,
  });
}

/** runSidecar in the netns with a memory logger; `stop()` aborts it and waits. */
function startLoop(ns: string, cfg: ReturnType<typeof config>) {
  const { log, records } = createMemoryLogger();
  // its own runner, so the audit records land in `records`
  const run = inNetns(createRunner({ log, allow: [tools.ip] }), ns);
  const ac = new AbortController();
  const statuses: string[] = [];
  let onStatus: (() => void) | undefined;
  let readyResolve: (s: string) => void = () => undefined;
  const ready = new Promise<string>((resolve) => (readyResolve = resolve));
  let metricsPort = 0;
  const done = runSidecar({
    config: cfg,
    log,
    runner: run,
    tools,
    signal: ac.signal,
    ready: (s) => {
      readyResolve(s);
    },
    status: (s) => {
      statuses.push(s);
      onStatus?.();
    },
    onMetricsListening: (p) => {
      metricsPort = p;
    },
  });
  return {
    records,
    statuses,
    ready,
    done,
    metricsPort: () => metricsPort,
    /** resolves at the next status (i.e. after the next sync) */
    nextStatus: () =>
      new Promise<string>((resolve) => {
        onStatus = () => {
          onStatus = undefined;
          resolve(statuses.at(-1)!);
        };
      }),
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

describe(
  'apiserver-proxy-sidecar in a network namespace',
  { skip: !root && 'needs root', timeout: 120_000 },
  () => {
    before(async () => {
      tools = await findNetTools();
      host = createRunner({ log: silentLogger(), allow: [tools.ip, process.execPath] });
      dir = await mkdtemp(path.join(tmpdir(), 'hp-sidecar-'));
      // some kernels (this CI's) are built without the dummy link type
      const { run } = await newNetns();
      dummyOk = await run
        .run([tools.ip, 'link', 'add', 'hpprobe', 'type', 'dummy'])
        .then(() => true)
        .catch(() => false);
    });
    after(async () => {
      for (const ns of namespaces)
        await host.run([tools.ip, 'netns', 'del', ns]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    });

    it('puts every address on lo and exactly the five rules per address, IPv4 and IPv6', async () => {
      const { run } = await newNetns();
      const cfg = config({
        ip_address: ['10.96.0.2', 'FD00:0::2'],
        kubernetes_service_ip_address: '10.96.0.1',
        setup_iptables: true,
        daemon: false,
        port: 443,
      });
      await runSidecar({
        config: cfg,
        log: silentLogger(),
        runner: run,
        tools,
        signal: new AbortController().signal,
        ready: () => undefined,
        status: () => undefined,
      });
      const addrs = await addresses(run, 'lo');
      for (const a of ['10.96.0.2/32', '10.96.0.1/32', 'fd00::2/128'])
        assert.ok(addrs.includes(a), `${a} in ${addrs.join(' ')}`);
      const v4raw = await ourRules(run, tools.iptablesSave, 'raw');
      assert.deepEqual(v4raw.sort(), [
        '-A HP-APIPROXY-OUTPUT -d 10.96.0.2/32 -p tcp -m tcp --dport 443 -j CT --notrack',
        '-A HP-APIPROXY-OUTPUT -s 10.96.0.2/32 -p tcp -m tcp --sport 443 -j CT --notrack',
        '-A HP-APIPROXY-PREROUTING -d 10.96.0.2/32 -p tcp -m tcp --dport 443 -j CT --notrack',
        '-A OUTPUT -j HP-APIPROXY-OUTPUT',
        '-A PREROUTING -j HP-APIPROXY-PREROUTING',
      ]);
      assert.deepEqual((await ourRules(run, tools.iptablesSave, 'filter')).sort(), [
        '-A HP-APIPROXY-INPUT -d 10.96.0.2/32 -p tcp -m tcp --dport 443 -j ACCEPT',
        '-A HP-APIPROXY-OUTPUT -s 10.96.0.2/32 -p tcp -m tcp --sport 443 -j ACCEPT',
        '-A INPUT -j HP-APIPROXY-INPUT',
        '-A OUTPUT -j HP-APIPROXY-OUTPUT',
      ]);
      assert.deepEqual((await ourRules(run, tools.ip6tablesSave, 'filter')).sort(), [
        '-A HP-APIPROXY-INPUT -d fd00::2/128 -p tcp -m tcp --dport 443 -j ACCEPT',
        '-A HP-APIPROXY-OUTPUT -s fd00::2/128 -p tcp -m tcp --sport 443 -j ACCEPT',
        '-A INPUT -j HP-APIPROXY-INPUT',
        '-A OUTPUT -j HP-APIPROXY-OUTPUT',
      ]);
      assert.equal((await ourRules(run, tools.ip6tablesSave, 'raw')).length, 5);
      // the kubernetes service address gets no rules
      assert.ok(!(await run.run([tools.iptablesSave])).stdout.includes('10.96.0.1'));
    });

    it('makes no mutating call when nothing drifted, and never grows the ruleset', async () => {
      const { ns, run } = await newNetns();
      const cfg = config({ ip_address: ['10.96.0.2', 'fd00::2'], setup_iptables: true });
      const loop = startLoop(ns, cfg);
      try {
        await loop.ready;
        const first = await snapshot(run);
        const before = mutating(loop.records).length;
        assert.ok(before >= 6, `the first sync changed things: ${before}`);
        // SIGHUP-free way to get more syncs: address events from an unrelated address
        for (let i = 0; i < 3; i++) {
          await run.run([tools.ip, 'addr', 'add', `192.0.2.${i + 1}/32`, 'dev', 'lo']);
          const next = loop.nextStatus();
          await run.run([tools.ip, 'addr', 'del', `192.0.2.${i + 1}/32`, 'dev', 'lo']);
          assert.match(await next, /no drift/);
        }
        assert.deepEqual(mutating(loop.records).slice(before), []);
        assert.equal(await snapshot(run), first);
      } finally {
        await loop.stop();
      }
    });

    it('puts a deleted address back within a second', async () => {
      const { ns, run } = await newNetns();
      const loop = startLoop(ns, config({ ip_address: ['10.96.0.2', 'fd00::2'] }));
      try {
        await loop.ready;
        for (const cidr of ['10.96.0.2/32', 'fd00::2/128']) {
          const next = loop.nextStatus();
          const t0 = Date.now();
          await run.run([tools.ip, 'addr', 'del', cidr, 'dev', 'lo']);
          assert.match(await next, new RegExp(`addr add ${cidr.replace(/\./g, '\\.')}`));
          assert.ok((await addresses(run, 'lo')).includes(cidr));
          const ms = Date.now() - t0;
          assert.ok(ms < 1000, `repaired in ${ms} ms`);
        }
      } finally {
        await loop.stop();
      }
    });

    it('repairs rules that were flushed or unhooked on the next sync', async () => {
      const { ns, run } = await newNetns();
      const loop = startLoop(ns, config({ ip_address: '10.96.0.2', setup_iptables: true }));
      try {
        await loop.ready;
        const want = await snapshot(run);
        await run.run([tools.iptablesRestore, '--noflush'], {
          input: '*filter\n-F HP-APIPROXY-INPUT\n-D OUTPUT -j HP-APIPROXY-OUTPUT\nCOMMIT\n',
        });
        const next = loop.nextStatus();
        // an address event triggers the sync; the periodic one would do it after sync_interval
        await run.run([tools.ip, 'addr', 'add', '192.0.2.9/32', 'dev', 'lo']);
        await run.run([tools.ip, 'addr', 'del', '192.0.2.9/32', 'dev', 'lo']);
        assert.match(await next, /ipv4 filter rules/);
        assert.equal(await snapshot(run), want);
      } finally {
        await loop.stop();
      }
    });

    it('puts its jump first again when another rule was inserted ahead of it, and leaves a first jump alone', async () => {
      const { ns, run } = await newNetns();
      const cfg = config({ ip_address: '10.96.0.2', setup_iptables: true, daemon: false });
      const once = async () => {
        const { log, records } = createMemoryLogger();
        await runSidecar({
          config: cfg,
          log,
          runner: inNetns(createRunner({ log, allow: [tools.ip] }), ns),
          tools,
          signal: new AbortController().signal,
          ready: () => undefined,
          status: () => undefined,
        });
        const done = records.find((r) => r['msg'] === 'sync done');
        return { changes: done?.['changes'] as string[], mutations: mutating(records) };
      };
      const chain = async (table: string, name: string) =>
        (await run.run([tools.iptablesSave, '-t', table])).stdout
          .split('\n')
          .filter((l) => l.startsWith(`-A ${name} `));
      await once();
      // e.g. a firewall reload that inserts its own rules at the top
      await run.run([tools.iptablesRestore, '--noflush'], {
        input: '*filter\n-I INPUT -p tcp -m tcp --dport 443 -j DROP\nCOMMIT\n',
      });
      await run.run([tools.iptablesRestore, '--noflush'], {
        input: '*raw\n-I PREROUTING -s 192.0.2.1/32 -j ACCEPT\nCOMMIT\n',
      });
      const repaired = await once();
      assert.deepEqual(repaired.changes.sort(), ['ipv4 filter rules', 'ipv4 raw rules']);
      assert.deepEqual(await chain('filter', 'INPUT'), [
        '-A INPUT -j HP-APIPROXY-INPUT',
        '-A INPUT -p tcp -m tcp --dport 443 -j DROP',
      ]);
      assert.deepEqual(await chain('raw', 'PREROUTING'), [
        '-A PREROUTING -j HP-APIPROXY-PREROUTING',
        '-A PREROUTING -s 192.0.2.1/32 -j ACCEPT',
      ]);
      const synced = await snapshot(run);
      const again = await once();
      assert.deepEqual(again.changes, []);
      assert.deepEqual(again.mutations, []);
      assert.equal(await snapshot(run), synced);
    });

    it('on stop with cleanup = true leaves the netns exactly as it found it, keeping addresses it did not add', async () => {
      const { ns, run } = await newNetns();
      // already there before the sidecar: not its to remove
      await run.run([tools.ip, 'addr', 'add', '10.96.0.1/32', 'dev', 'lo']);
      const before = await snapshot(run);
      const loop = startLoop(
        ns,
        config({
          ip_address: ['10.96.0.2', 'fd00::2'],
          kubernetes_service_ip_address: '10.96.0.1',
          setup_iptables: true,
          cleanup: true,
        }),
      );
      await loop.ready;
      assert.notEqual(await snapshot(run), before);
      await loop.stop();
      assert.equal(await snapshot(run), before);
    });

    it('gets ready when an IPv6 address is already there with another prefix, and leaves it on cleanup', async () => {
      const { ns, run } = await newNetns();
      await run.run([tools.ip, 'addr', 'add', 'fd00::2/64', 'dev', 'lo', 'nodad']);
      const loop = startLoop(
        ns,
        config({ ip_address: ['fd00::2', '10.96.0.2'], setup_iptables: true, cleanup: true }),
      );
      try {
        await within(loop.ready, 10_000, `ready (statuses: ${loop.statuses.join(' | ')})`);
        const addrs = await addresses(run, 'lo');
        assert.ok(addrs.includes('10.96.0.2/32'), addrs.join(' '));
        assert.ok(addrs.includes('fd00::2/64') && !addrs.includes('fd00::2/128'), addrs.join(' '));
        assert.equal((await ourRules(run, tools.ip6tablesSave, 'filter')).length, 4);
        assert.equal((await ourRules(run, tools.iptablesSave, 'filter')).length, 4);
      } finally {
        await loop.stop();
      }
      const addrs = await addresses(run, 'lo');
      assert.ok(addrs.includes('fd00::2/64') && !addrs.includes('10.96.0.2/32'), addrs.join(' '));
    });

    it('removes the ip6tables chains of an IPv6 address dropped from the config, on sync and on --cleanup', async () => {
      const { run } = await newNetns();
      const before = await snapshot(run);
      const state = path.join(dir, `${randomBytes(4).toString('hex')}.json`);
      const once = async (ip_address: string[], cleanupOnly = false) => {
        await runSidecar({
          config: config({ ip_address, setup_iptables: true, daemon: false, state_file: state }),
          log: silentLogger(),
          runner: run,
          tools,
          signal: new AbortController().signal,
          ready: () => undefined,
          status: () => undefined,
          cleanupOnly,
        });
      };
      await once(['10.96.0.2', 'fd00::2']);
      assert.equal((await ourRules(run, tools.ip6tablesSave, 'filter')).length, 4);
      await once(['10.96.0.2']);
      assert.deepEqual(await ourRules(run, tools.ip6tablesSave, 'filter'), []);
      assert.deepEqual(await ourRules(run, tools.ip6tablesSave, 'raw'), []);
      assert.equal((await ourRules(run, tools.iptablesSave, 'filter')).length, 4);
      // sync with both again, then --cleanup from a config that no longer has the IPv6 address
      await once(['10.96.0.2', 'fd00::2']);
      await once(['10.96.0.2'], true);
      assert.equal(await snapshot(run), before);
    });

    it('after an upgrade, claims the addresses an old state file lists on the interface, and --cleanup removes them', async () => {
      const { run } = await newNetns();
      const before = await snapshot(run);
      // what the older version left: the address on `interface`, recorded without its device
      await run.run([tools.ip, 'addr', 'add', '10.96.0.2/32', 'dev', 'lo']);
      const state = path.join(dir, `${randomBytes(4).toString('hex')}.json`);
      await writeFile(state, '{"link":null,"addresses":["10.96.0.2/32"]}\n');
      const once = async (cleanupOnly: boolean) => {
        await runSidecar({
          config: config({ ip_address: '10.96.0.2', daemon: false, state_file: state }),
          log: silentLogger(),
          runner: run,
          tools,
          signal: new AbortController().signal,
          ready: () => undefined,
          status: () => undefined,
          cleanupOnly,
        });
      };
      await once(false);
      assert.deepEqual(JSON.parse(await readFile(state, 'utf8')), {
        version: 2,
        link: null,
        addresses: [{ dev: 'lo', cidr: '10.96.0.2/32' }],
        chains: [],
      });
      await once(true);
      assert.equal(await snapshot(run), before);
    });

    it('drops, with a warning, an address an old state file lists that is not on the interface, and removes it from no device', async () => {
      const { ns, run } = await newNetns();
      // the address is on another device (the older version's `interface` was hp-v0, say)
      await run.run([tools.ip, 'link', 'add', 'hp-v0', 'type', 'veth', 'peer', 'name', 'hp-v1']);
      await run.run([tools.ip, 'addr', 'add', '10.96.0.2/32', 'dev', 'hp-v0']);
      const before = await snapshot(run);
      const state = path.join(dir, `${randomBytes(4).toString('hex')}.json`);
      await writeFile(state, '{"link":null,"addresses":["10.96.0.2/32"]}\n');
      const { log, records } = createMemoryLogger();
      await runSidecar({
        config: config({ ip_address: '10.96.0.2', daemon: false, state_file: state }),
        log,
        runner: inNetns(createRunner({ log, allow: [tools.ip] }), ns),
        tools,
        signal: new AbortController().signal,
        ready: () => undefined,
        status: () => undefined,
        cleanupOnly: true,
      });
      assert.deepEqual(mutating(records), []);
      assert.equal(await snapshot(run), before);
      assert.deepEqual(await addresses(run, 'hp-v0'), ['10.96.0.2/32']);
      assert.ok(
        records.some(
          (r) =>
            r['level'] === 'warn' &&
            /10\.96\.0\.2\/32 is recorded without its device .* not on lo/.test(String(r['msg'])),
        ),
        JSON.stringify(records.filter((r) => r['level'] === 'warn')),
      );
      assert.deepEqual(JSON.parse(await readFile(state, 'utf8')), {
        version: 2,
        link: null,
        addresses: [],
        chains: [],
      });
    });

    it('serves metrics of syncs and repairs on the loopback listener', async () => {
      const { ns } = await newNetns();
      const loop = startLoop(
        ns,
        config({ ip_address: '10.96.0.2', metrics_listen: '127.0.0.1:0' }),
      );
      try {
        await loop.ready;
        const base = `http://127.0.0.1:${loop.metricsPort()}`;
        assert.equal((await fetch(`${base}/readyz`)).status, 200);
        assert.equal((await fetch(`${base}/healthz`)).status, 200);
        const text = await (await fetch(`${base}/metrics`)).text();
        assert.match(text, /apiserver_proxy_sidecar_syncs_total\{result="ok"\} 1/);
        assert.match(text, /apiserver_proxy_sidecar_repairs_total\{kind="address"\} 1/);
        assert.match(text, /apiserver_proxy_sidecar_sync_duration_seconds_count 1/);
      } finally {
        await loop.stop();
      }
    });

    it('creates the interface as a dummy link when it is missing, and cleanup deletes it', async (t) => {
      if (!dummyOk) {
        t.skip('this kernel has no dummy link type (test/vm covers it)');
        return;
      }
      const { ns, run } = await newNetns();
      const before = await snapshot(run);
      const loop = startLoop(
        ns,
        config({ ip_address: ['10.96.0.2', 'fd00::2'], interface: 'hp-proxy0', cleanup: true }),
      );
      await loop.ready;
      const link = await run.run([tools.ip, '-j', '-d', 'link', 'show', 'dev', 'hp-proxy0']);
      const info = JSON.parse(link.stdout) as {
        flags: string[];
        linkinfo?: { info_kind?: string };
      }[];
      assert.equal(info[0]?.linkinfo?.info_kind, 'dummy');
      assert.ok(info[0].flags.includes('UP'));
      assert.deepEqual((await addresses(run, 'hp-proxy0')).sort(), ['10.96.0.2/32', 'fd00::2/128']);
      await loop.stop();
      assert.equal(await snapshot(run), before);
    });

    it('as a real process: daemon = false syncs once and exits 0, --cleanup removes it all', async () => {
      const { ns, run } = await newNetns();
      const before = await snapshot(run);
      const file = path.join(dir, `${ns}.toml`);
      const state = path.join(dir, `${ns}.state.json`);
      await writeFile(
        file,
        `ip_address = ["10.96.0.2", "fd00::2"]\nsetup_iptables = true\ndaemon = false\nstate_file = "${state}"\n`,
      );
      const node = [process.execPath, '--import', 'tsx', MAIN, '--config', file];
      const once = await run.run(node, { timeoutMs: 60_000 });
      assert.equal(once.code, 0);
      assert.deepEqual(JSON.parse(await readFile(state, 'utf8')), {
        version: 2,
        link: null,
        addresses: [
          { dev: 'lo', cidr: '10.96.0.2/32' },
          { dev: 'lo', cidr: 'fd00::2/128' },
        ],
        chains: ['ipv4', 'ipv6'].flatMap((family) => [
          { family, table: 'raw', chain: 'HP-APIPROXY-PREROUTING' },
          { family, table: 'raw', chain: 'HP-APIPROXY-OUTPUT' },
          { family, table: 'filter', chain: 'HP-APIPROXY-INPUT' },
          { family, table: 'filter', chain: 'HP-APIPROXY-OUTPUT' },
        ]),
      });
      assert.equal((await ourRules(run, tools.iptablesSave, 'raw')).length, 5);
      await run.run([...node, '--cleanup'], { timeoutMs: 60_000 });
      assert.equal(await snapshot(run), before);
    });

    it('as a real process: exits 1 with the reason when the one sync fails', async () => {
      const { ns, run } = await newNetns();
      const file = path.join(dir, `${ns}-bad.toml`);
      // the ownership record cannot be written (its directory is a file): the sync must fail
      const notDir = path.join(dir, `${ns}-file`);
      await writeFile(notDir, '');
      await writeFile(
        file,
        `ip_address = "10.96.0.2"\ndaemon = false\nstate_file = "${notDir}/state.json"\n`,
      );
      const res = await run.run([process.execPath, '--import', 'tsx', MAIN, '--config', file], {
        timeoutMs: 60_000,
        okCodes: [1],
      });
      assert.match(res.stderr, /^apiserver-proxy-sidecar: reading state .+\/state\.json: ENOTDIR/m);
    });

    it('as a real process: SIGTERM with cleanup = true removes what it added, then exits 0', async () => {
      const { ns, run } = await newNetns();
      const before = await snapshot(run);
      const file = path.join(dir, `${ns}-term.toml`);
      await writeFile(
        file,
        `ip_address = ["10.96.0.2", "fd00::2"]\nsetup_iptables = true\ncleanup = true\nstate_file = "${path.join(dir, `${ns}-term.json`)}"\n`,
      );
      const child = run.spawn([process.execPath, '--import', 'tsx', MAIN, '--config', file], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stderr?.resume();
      await new Promise<void>((resolve, reject) => {
        const lines = createInterface({ input: child.stdout! });
        lines.on('line', (line) => {
          if (line.includes('"msg":"ready"')) resolve();
        });
        void child.exited.then(() => {
          reject(new Error('exited before ready'));
        });
      });
      assert.ok((await addresses(run, 'lo')).includes('10.96.0.2/32'));
      // `ip netns exec` execs node: the pid is the daemon's
      child.kill('SIGTERM');
      assert.deepEqual(await child.exited, { code: 0, signal: null });
      assert.equal(await snapshot(run), before);
    });
  },
);
