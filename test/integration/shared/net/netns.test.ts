import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRunner } from '../../../../shared/exec/index.ts';
import type { Runner } from '../../../../shared/exec/types.ts';
import { createMemoryLogger } from '../../../../shared/log/index.ts';
import {
  cleanupLinks,
  cleanupRules,
  findNetTools,
  netToolList,
  readLinks,
  syncLinks,
  syncRules,
  type DesiredLinks,
  type NetDeps,
  type NetTools,
  type RuleTable,
} from '../../../../shared/net/index.ts';

const root = process.getuid?.() === 0;
const ns = `hp-test-${randomBytes(4).toString('hex')}`;

let tools: NetTools;
let host: Runner; // runs ip netns add/del on the host
let deps: NetDeps;
let records: Record<string, unknown>[];
let dummyOk = false;

/** A Runner that runs every call inside the test's network namespace. */
function inNetns(real: Runner, ip: string, name: string): Runner {
  return {
    run: (argv, opts) => real.run([ip, 'netns', 'exec', name, ...argv], opts),
    spawn: (argv, opts) => real.spawn([ip, 'netns', 'exec', name, ...argv], opts),
  };
}

/** Audit records of calls that changed state: anything but `ip ... show` and `*-save`. */
function mutating(): string[][] {
  return records
    .filter((r) => r['component'] === 'exec')
    .map((r) => (r['argv'] as string[]).slice(4)) // drop `ip netns exec NAME`
    .filter((argv) => !(argv.at(-1) === 'show' || /-save$/.test(argv[0] ?? '')));
}

async function snapshot(): Promise<string> {
  const run = async (argv: string[]) => (await deps.runner.run(argv)).stdout;
  const strip = (s: string) =>
    s
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
  const parts = [
    await run([tools.ip, '-j', 'addr', 'show']),
    ...(await Promise.all(
      (['raw', 'filter'] as const).flatMap((t) => [
        run([tools.iptablesSave, '-t', t]).then(strip),
        run([tools.ip6tablesSave, '-t', t]).then(strip),
      ]),
    )),
  ];
  return parts.join('\n----\n');
}

const PORT = 443;
const RULES: RuleTable[] = [
  {
    family: 'ipv4',
    table: 'raw',
    chains: [
      {
        name: 'HOSTPLANE-TEST-NOTRACK',
        jumpFrom: ['PREROUTING', 'OUTPUT'],
        // written loosely on purpose: iptables-save prints them differently
        rules: [
          `-p tcp -d 10.96.0.2 --dport ${PORT} -j NOTRACK`,
          `-d 10.96.0.3/32 -p tcp -m tcp --sport ${PORT} -j CT --notrack`,
        ],
      },
    ],
  },
  {
    family: 'ipv4',
    table: 'filter',
    chains: [
      {
        name: 'HOSTPLANE-TEST-ACCEPT',
        jumpFrom: ['INPUT'],
        rules: [`-d 10.96.0.2/32 -p tcp --dport ${PORT} -j ACCEPT`],
      },
    ],
  },
  {
    family: 'ipv6',
    table: 'raw',
    chains: [
      {
        name: 'HOSTPLANE-TEST-NOTRACK',
        jumpFrom: ['PREROUTING', 'OUTPUT'],
        rules: [`-d FD00:0::2 -p tcp --dport ${PORT} -j NOTRACK`],
      },
    ],
  },
];

describe('shared/net in a network namespace', { skip: root ? false : 'needs root' }, () => {
  before(async () => {
    tools = await findNetTools();
    const mem = createMemoryLogger();
    records = mem.records;
    host = createRunner({ log: createMemoryLogger().log, allow: [tools.ip] });
    await host.run([tools.ip, 'netns', 'add', ns]);
    const real = createRunner({ log: mem.log, allow: netToolList(tools) });
    deps = { runner: inNetns(real, tools.ip, ns), tools };
    // some kernels (ours: no dummy module) cannot make dummy links; those cases skip
    try {
      await deps.runner.run([tools.ip, 'link', 'add', 'hp-probe', 'type', 'dummy']);
      await deps.runner.run([tools.ip, 'link', 'del', 'hp-probe']);
      dummyOk = true;
    } catch (err) {
      // the test VM's Debian kernel has the module: there, missing dummy links are a failure
      if (process.env['HOSTPLANE_IN_VM'] === '1') throw err;
      dummyOk = false;
    }
  });
  after(async () => {
    await host.run([tools.ip, 'netns', 'del', ns]).catch(() => undefined);
  });

  it('puts IPv4 and IPv6 addresses on lo, and a second sync makes zero mutating calls', async () => {
    const desired: DesiredLinks = {
      addresses: [
        { dev: 'lo', cidr: '10.96.0.2/32' },
        { dev: 'lo', cidr: '10.96.0.3' },
        { dev: 'lo', cidr: 'FD00:0:0::2/128' },
      ],
    };
    // lo must be up for IPv6 addresses to stay; in a fresh netns it is down
    await deps.runner.run([tools.ip, 'link', 'set', 'lo', 'up']);
    const before = await snapshot();
    records.length = 0;
    const plan = await syncLinks(deps, desired);
    assert.equal(plan.length, 3);
    const lo = (await readLinks(deps)).find((l) => l.name === 'lo')!;
    for (const a of ['10.96.0.2/32', '10.96.0.3/32', 'fd00::2/128']) {
      assert.ok(lo.addresses.includes(a), `${a} missing from ${lo.addresses.join(',')}`);
    }
    records.length = 0;
    assert.deepEqual(await syncLinks(deps, desired), []);
    assert.deepEqual(mutating(), []);
    await cleanupLinks(deps, desired);
    const links = await readLinks(deps);
    assert.ok(
      links.some((l) => l.name === 'lo'),
      'lo must never be removed',
    );
    assert.equal(await snapshot(), before);
  });

  it('leaves addresses it was not given alone on cleanup', async () => {
    await deps.runner.run([tools.ip, 'addr', 'add', '10.1.1.1/32', 'dev', 'lo']);
    const desired: DesiredLinks = { addresses: [{ dev: 'lo', cidr: '10.96.0.9/32' }] };
    await syncLinks(deps, desired);
    await cleanupLinks(deps, desired);
    const lo = (await readLinks(deps)).find((l) => l.name === 'lo')!;
    assert.ok(lo.addresses.includes('10.1.1.1/32'));
    assert.ok(!lo.addresses.includes('10.96.0.9/32'));
    await deps.runner.run([tools.ip, 'addr', 'del', '10.1.1.1/32', 'dev', 'lo']);
  });

  it('creates a dummy link when absent with its addresses and removes it on cleanup', async (t) => {
    if (!dummyOk) {
      t.skip('this kernel cannot create dummy links');
      return;
    }
    const desired: DesiredLinks = {
      links: [{ name: 'hp-vip0', kind: 'dummy' }],
      addresses: [
        { dev: 'hp-vip0', cidr: '10.96.0.2/32' },
        { dev: 'hp-vip0', cidr: 'fd00::2/128' },
      ],
    };
    const before = await snapshot();
    await syncLinks(deps, desired);
    const link = (await readLinks(deps)).find((l) => l.name === 'hp-vip0');
    assert.ok(link !== undefined);
    assert.equal(link.kind, 'dummy');
    assert.equal(link.up, true);
    assert.ok(link.addresses.includes('10.96.0.2/32'));
    assert.ok(link.addresses.includes('fd00::2/128'));
    records.length = 0;
    await syncLinks(deps, desired);
    assert.deepEqual(mutating(), []);
    await cleanupLinks(deps, desired);
    assert.equal(await snapshot(), before);
  });

  it('applies NOTRACK and ACCEPT rules, resyncs with zero mutating calls, cleans up exactly', async () => {
    const before = await snapshot();
    records.length = 0;
    const docs = await syncRules(deps, RULES);
    assert.equal(docs.length, 3); // ipv4 raw, ipv4 filter, ipv6 raw
    assert.equal(mutating().length, 3);
    const raw4 = (await deps.runner.run([tools.iptablesSave, '-t', 'raw'])).stdout;
    assert.match(raw4, /^-A PREROUTING -j HOSTPLANE-TEST-NOTRACK$/m);
    assert.match(raw4, /^-A OUTPUT -j HOSTPLANE-TEST-NOTRACK$/m);
    assert.match(raw4, /-A HOSTPLANE-TEST-NOTRACK -d 10\.96\.0\.2\/32 -p tcp -m tcp --dport 443/);
    const raw6 = (await deps.runner.run([tools.ip6tablesSave, '-t', 'raw'])).stdout;
    assert.match(raw6, /-A HOSTPLANE-TEST-NOTRACK -d fd00::2\/128 -p tcp -m tcp --dport 443/);

    records.length = 0;
    assert.deepEqual(await syncRules(deps, RULES), []);
    assert.deepEqual(mutating(), [], 'a sync without drift must not call iptables-restore');

    await cleanupRules(deps, RULES);
    assert.equal(await snapshot(), before);
  });

  it('repairs drift: a flushed chain and a deleted jump come back in one restore call', async () => {
    await syncRules(deps, RULES);
    const iptables = tools.iptablesSave.replace(/-save$/, '');
    const drift = createRunner({ log: createMemoryLogger().log, allow: [tools.ip] });
    await drift.run([
      tools.ip,
      'netns',
      'exec',
      ns,
      iptables,
      '-t',
      'raw',
      '-F',
      'HOSTPLANE-TEST-NOTRACK',
    ]);
    await drift.run([
      tools.ip,
      'netns',
      'exec',
      ns,
      iptables,
      '-t',
      'raw',
      '-D',
      'OUTPUT',
      '-j',
      'HOSTPLANE-TEST-NOTRACK',
    ]);
    records.length = 0;
    const docs = await syncRules(deps, RULES);
    assert.equal(docs.length, 1);
    assert.equal(mutating().length, 1);
    records.length = 0;
    assert.deepEqual(await syncRules(deps, RULES), []);
    assert.deepEqual(mutating(), []);
    await cleanupRules(deps, RULES);
  });

  it('makes no call at all to clean up what is not there', async () => {
    records.length = 0;
    assert.deepEqual(await cleanupRules(deps, RULES), []);
    assert.deepEqual(
      await cleanupLinks(deps, { addresses: [{ dev: 'lo', cidr: '10.96.0.2/32' }] }),
      [],
    );
    assert.deepEqual(mutating(), []);
  });
});
