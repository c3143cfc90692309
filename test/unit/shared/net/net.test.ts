import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeNetRunner } from '../../../../shared/net/fake.ts';
import {
  canonicalRule,
  cleanupLinks,
  cleanupRules,
  parseCidr,
  parseIpAddr,
  parseSave,
  planLinks,
  planLinksCleanup,
  planRules,
  renderIpPlan,
  syncLinks,
  syncRules,
  type CurrentLink,
  type DesiredLinks,
  type NetDeps,
  type RuleTable,
} from '../../../../shared/net/index.ts';

function fakeDeps(fake = new FakeNetRunner()): { fake: FakeNetRunner; deps: NetDeps } {
  return { fake, deps: { runner: fake, tools: fake.tools } };
}

describe('parseCidr', () => {
  const table = [
    { in: '10.0.0.1', want: '10.0.0.1/32' },
    { in: '10.0.0.0/8', want: '10.0.0.0/8' },
    { in: 'FD00:0:0::1', want: 'fd00::1/128' },
    { in: '2001:db8:0:0:1:0:0:1/64', want: '2001:db8::1:0:0:1/64' },
  ];
  for (const t of table) {
    it(`reads ${t.in} as ${t.want}`, () => {
      assert.equal(parseCidr(t.in).text, t.want);
    });
  }
  it('rejects what is not an address or has a prefix out of range', () => {
    assert.throws(() => parseCidr('lo'), /parsing CIDR "lo": not an IP address/);
    assert.throws(() => parseCidr('10.0.0.1/33'), /prefix must be 0..32/);
    assert.throws(() => parseCidr('fd00::1/129'), /prefix must be 0..128/);
  });
});

describe('canonicalRule', () => {
  const table = [
    {
      name: 'bare host address, implicit tcp match, NOTRACK',
      in: '-p tcp -d 10.0.0.1 --dport 443 -j NOTRACK',
      want: '-d 10.0.0.1/32 -p tcp -m tcp --dport 443 -j CT --notrack',
    },
    {
      name: 'what iptables-save printed stays as it is',
      in: '-d 10.0.0.1/32 -p tcp -m tcp --dport 443 -j CT --notrack',
      want: '-d 10.0.0.1/32 -p tcp -m tcp --dport 443 -j CT --notrack',
    },
    {
      name: 'long option names and IPv6',
      in: '--protocol udp --destination FD00::0:1 --destination-port 53 --jump ACCEPT',
      want: '-d fd00::1/128 -p udp -m udp --dport 53 -j ACCEPT',
    },
    {
      name: 'negation and base option order',
      in: '-p tcp ! -d 10.0.0.0/8 -s 1.2.3.0/24 -j ACCEPT',
      want: '-s 1.2.3.0/24 ! -d 10.0.0.0/8 -p tcp -j ACCEPT',
    },
    {
      name: 'quoted comment with spaces',
      in: '-d 10.0.0.1 -m comment --comment "hostplane vip" -j ACCEPT',
      want: '-d 10.0.0.1/32 -m comment --comment "hostplane vip" -j ACCEPT',
    },
    {
      name: 'the implicit match goes where the first port option loaded it',
      in: '-p tcp -m comment --comment x --dport 1 -j ACCEPT',
      want: '-p tcp -m comment --comment x -m tcp --dport 1 -j ACCEPT',
    },
  ];
  for (const t of table) {
    it(`canonicalizes ${t.name}`, () => {
      assert.equal(canonicalRule(t.in), t.want);
      assert.equal(canonicalRule(t.want), t.want);
    });
  }
});

describe('parseIpAddr', () => {
  it('reads names, kinds, up flags and canonical addresses from ip -j -d addr show', () => {
    const json = JSON.stringify([
      {
        ifname: 'lo',
        flags: ['LOOPBACK', 'UP', 'LOWER_UP'],
        addr_info: [
          { family: 'inet', local: '127.0.0.1', prefixlen: 8 },
          { family: 'inet6', local: '::1', prefixlen: 128 },
        ],
      },
      { ifname: 'hp0', flags: ['BROADCAST'], linkinfo: { info_kind: 'dummy' }, addr_info: [] },
    ]);
    assert.deepEqual(parseIpAddr(json), [
      { name: 'lo', kind: null, up: true, addresses: ['127.0.0.1/8', '::1/128'] },
      { name: 'hp0', kind: 'dummy', up: false, addresses: [] },
    ]);
  });
});

describe('planLinks', () => {
  const lo: CurrentLink = { name: 'lo', kind: null, up: true, addresses: ['127.0.0.1/8'] };
  const table: { name: string; desired: DesiredLinks; current: CurrentLink[]; want: string }[] = [
    {
      name: 'nothing desired: nothing to do',
      desired: {},
      current: [lo],
      want: '',
    },
    {
      name: 'addresses on lo, IPv6 without DAD',
      desired: {
        addresses: [
          { dev: 'lo', cidr: '10.96.0.1' },
          { dev: 'lo', cidr: 'fd00::1/128' },
        ],
      },
      current: [lo],
      want: 'ip addr add 10.96.0.1/32 dev lo\nip addr add fd00::1/128 dev lo nodad',
    },
    {
      name: 'an address already there is left alone',
      desired: { addresses: [{ dev: 'lo', cidr: '127.0.0.1/8' }] },
      current: [lo],
      want: '',
    },
    {
      name: 'an address already there with another prefix (IPv4 or IPv6) is left alone',
      desired: {
        addresses: [
          { dev: 'lo', cidr: '127.0.0.1/32' },
          { dev: 'lo', cidr: 'fd00::2' },
        ],
      },
      current: [{ ...lo, addresses: ['127.0.0.1/8', 'fd00::2/64'] }],
      want: '',
    },
    {
      name: 'a missing dummy link is created and brought up before its addresses',
      desired: {
        links: [{ name: 'hp0', kind: 'dummy' }],
        addresses: [{ dev: 'hp0', cidr: '10.0.0.1/32' }],
      },
      current: [lo],
      want: 'ip link add hp0 type dummy\nip link set hp0 up\nip addr add 10.0.0.1/32 dev hp0',
    },
    {
      name: 'an existing link that is down is only brought up',
      desired: { links: [{ name: 'hp0', kind: 'dummy' }] },
      current: [lo, { name: 'hp0', kind: 'dummy', up: false, addresses: [] }],
      want: 'ip link set hp0 up',
    },
  ];
  for (const t of table) {
    it(`plans ${t.name}`, () => {
      assert.equal(renderIpPlan(planLinks(t.desired, t.current)), t.want);
    });
  }

  it('refuses an address on a link that neither exists nor is ours to create', () => {
    assert.throws(
      () => planLinks({ addresses: [{ dev: 'eth9', cidr: '10.0.0.1' }] }, [lo]),
      /planning address 10.0.0.1\/32 on eth9: no such link, and it is not one we create/,
    );
  });

  it('never plans to delete lo or a same-named link of another kind', () => {
    const plan = planLinksCleanup(
      {
        links: [
          { name: 'lo', kind: 'dummy' },
          { name: 'eth0', kind: 'dummy' },
        ],
        addresses: [{ dev: 'lo', cidr: '10.96.0.1/32' }],
      },
      [
        { ...lo, addresses: ['127.0.0.1/8', '10.96.0.1/32'] },
        { name: 'eth0', kind: 'veth', up: true, addresses: [] },
      ],
    );
    assert.equal(renderIpPlan(plan), 'ip addr del 10.96.0.1/32 dev lo');
  });
});

describe('links through the fake runner', () => {
  it('syncs, resyncs without a mutating call, and cleans up back to the start', async () => {
    const { fake, deps } = fakeDeps();
    const start = fake.render();
    const desired: DesiredLinks = {
      links: [{ name: 'hp0', kind: 'dummy' }],
      addresses: [
        { dev: 'hp0', cidr: '10.96.0.1' },
        { dev: 'lo', cidr: 'fd00::1' },
      ],
    };
    await syncLinks(deps, desired);
    assert.equal(
      fake.render(),
      ['addr hp0 10.96.0.1/32', 'addr lo fd00::1/128', 'link hp0 dummy up', 'link lo up'].join(
        '\n',
      ),
    );
    const before = fake.mutations().length;
    await syncLinks(deps, desired);
    assert.equal(fake.mutations().length, before);
    await cleanupLinks(deps, desired);
    assert.equal(fake.render(), start);
  });
});

const RULES: RuleTable[] = [
  {
    family: 'ipv4',
    table: 'raw',
    chains: [
      {
        name: 'HOSTPLANE-VIP',
        jumpFrom: ['PREROUTING', 'OUTPUT'],
        rules: ['-d 10.96.0.1 -p tcp --dport 443 -j NOTRACK'],
      },
    ],
  },
  {
    family: 'ipv6',
    table: 'filter',
    chains: [
      {
        name: 'HOSTPLANE-VIP',
        jumpFrom: ['INPUT'],
        rules: ['-d fd00::1 -p tcp --dport 443 -j ACCEPT'],
      },
    ],
  },
];
const SYNCED = [
  'ipv4/raw -A HOSTPLANE-VIP -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j CT --notrack',
  'ipv4/raw -A OUTPUT -j HOSTPLANE-VIP',
  'ipv4/raw -A PREROUTING -j HOSTPLANE-VIP',
  'ipv4/raw :HOSTPLANE-VIP',
  'ipv6/filter -A HOSTPLANE-VIP -d fd00::1/128 -p tcp -m tcp --dport 443 -j ACCEPT',
  'ipv6/filter -A INPUT -j HOSTPLANE-VIP',
  'ipv6/filter :HOSTPLANE-VIP',
  'link lo up',
].join('\n');

describe('rules through the fake runner', () => {
  const table: {
    name: string;
    setup: { family: 'ipv4' | 'ipv6'; doc: string }[];
    calls: number;
  }[] = [
    { name: 'from nothing: one restore per table', setup: [], calls: 2 },
    {
      name: 'a foreign rule in our chain is replaced',
      setup: [
        {
          family: 'ipv4',
          doc: '*raw\n:HOSTPLANE-VIP - [0:0]\n-A HOSTPLANE-VIP -j ACCEPT\n-I PREROUTING -j HOSTPLANE-VIP\n-I OUTPUT -j HOSTPLANE-VIP\nCOMMIT\n',
        },
      ],
      calls: 2,
    },
    {
      name: 'duplicate and stray jumps are removed',
      setup: [
        {
          family: 'ipv4',
          doc: '*raw\n:HOSTPLANE-VIP - [0:0]\n-A HOSTPLANE-VIP -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j NOTRACK\n-I PREROUTING -j HOSTPLANE-VIP\n-I PREROUTING -j HOSTPLANE-VIP\n-I OUTPUT -j HOSTPLANE-VIP\nCOMMIT\n',
        },
        {
          family: 'ipv6',
          doc: '*filter\n:HOSTPLANE-VIP - [0:0]\n-A HOSTPLANE-VIP -d fd00::1/128 -p tcp -m tcp --dport 443 -j ACCEPT\n-I INPUT -j HOSTPLANE-VIP\n-I FORWARD -j HOSTPLANE-VIP\nCOMMIT\n',
        },
      ],
      calls: 2,
    },
    {
      name: 'already in sync (written as NOTRACK by someone): no call',
      setup: [
        {
          family: 'ipv4',
          doc: '*raw\n:HOSTPLANE-VIP - [0:0]\n-A HOSTPLANE-VIP -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j NOTRACK\n-I PREROUTING -j HOSTPLANE-VIP\n-I OUTPUT -j HOSTPLANE-VIP\nCOMMIT\n',
        },
        {
          family: 'ipv6',
          doc: '*filter\n:HOSTPLANE-VIP - [0:0]\n-A HOSTPLANE-VIP -d fd00::1/128 -p tcp -m tcp --dport 443 -j ACCEPT\n-I INPUT -j HOSTPLANE-VIP\nCOMMIT\n',
        },
      ],
      calls: 0,
    },
  ];
  for (const t of table) {
    it(`syncs ${t.name}`, async () => {
      const { fake, deps } = fakeDeps();
      for (const s of t.setup) fake.restore(s.family, s.doc);
      await syncRules(deps, RULES);
      assert.equal(fake.mutations().length, t.calls);
      assert.equal(fake.render(), SYNCED);
      await syncRules(deps, RULES);
      assert.equal(fake.mutations().length, t.calls, 'the second sync changed something');
    });
  }

  it('renders one --noflush document per drifted table', () => {
    const docs = planRules(RULES, new Map());
    assert.deepEqual(
      docs.map((d) => `${d.family} ${d.doc}`),
      [
        'ipv4 *raw\n:HOSTPLANE-VIP - [0:0]\n-A HOSTPLANE-VIP -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j CT --notrack\n-I PREROUTING -j HOSTPLANE-VIP\n-I OUTPUT -j HOSTPLANE-VIP\nCOMMIT\n',
        'ipv6 *filter\n:HOSTPLANE-VIP - [0:0]\n-A HOSTPLANE-VIP -d fd00::1/128 -p tcp -m tcp --dport 443 -j ACCEPT\n-I INPUT -j HOSTPLANE-VIP\nCOMMIT\n',
      ],
    );
  });

  it('moves a jump that another rule got ahead of back to the top, and keeps ours in any order', () => {
    const two: RuleTable[] = [
      {
        family: 'ipv4',
        table: 'filter',
        chains: ['HOSTPLANE-A', 'HOSTPLANE-B'].map((name) => ({
          name,
          jumpFrom: ['INPUT'],
          rules: ['-j ACCEPT'],
        })),
      },
    ];
    const save = (input: string[]) =>
      new Map([
        [
          'ipv4/filter',
          parseSave(
            `*filter\n:INPUT ACCEPT [0:0]\n:HOSTPLANE-A - [0:0]\n:HOSTPLANE-B - [0:0]\n${input.map((r) => `-A INPUT ${r}`).join('\n')}\n-A HOSTPLANE-A -j ACCEPT\n-A HOSTPLANE-B -j ACCEPT\nCOMMIT\n`,
            'filter',
          ),
        ],
      ]);
    const docs = (input: string[]) => planRules(two, save(input)).map((d) => d.doc);
    assert.deepEqual(docs(['-j HOSTPLANE-B', '-j HOSTPLANE-A', '-p tcp -j DROP']), []);
    assert.deepEqual(docs(['-j HOSTPLANE-A', '-p tcp -j DROP', '-j HOSTPLANE-B']), [
      '*filter\n-D INPUT -j HOSTPLANE-B\n-I INPUT -j HOSTPLANE-B\nCOMMIT\n',
    ]);
    assert.deepEqual(docs(['-j HOSTPLANE-A', '-j HOSTPLANE-B', '-j HOSTPLANE-A']), [
      '*filter\n-D INPUT -j HOSTPLANE-A\n-D INPUT -j HOSTPLANE-A\n-I INPUT -j HOSTPLANE-A\nCOMMIT\n',
    ]);
  });

  it('cleans up our chains and every jump to them, leaving other rules', async () => {
    const { fake, deps } = fakeDeps();
    fake.restore('ipv4', '*raw\n-A OUTPUT -d 10.9.9.9/32 -j ACCEPT\nCOMMIT\n');
    const start = fake.render();
    await syncRules(deps, RULES);
    fake.restore('ipv4', '*raw\n-A OUTPUT -p tcp -j HOSTPLANE-VIP\nCOMMIT\n'); // someone else's jump
    await cleanupRules(deps, RULES);
    assert.equal(fake.render(), start);
    assert.match(fake.render(), /ipv4\/raw -A OUTPUT -d 10\.9\.9\.9\/32 -j ACCEPT/);
    const n = fake.mutations().length;
    await cleanupRules(deps, RULES);
    assert.equal(fake.mutations().length, n, 'nothing left to clean means no call');
  });
});

describe('FakeNetRunner', () => {
  it('refuses calls it does not understand', async () => {
    const fake = new FakeNetRunner();
    await assert.rejects(fake.run(['/usr/sbin/ip', 'route', 'add', 'default']), /unsupported call/);
    await assert.rejects(fake.run(['/usr/sbin/iptables', '-A', 'INPUT']), /unsupported call/);
  });

  it('fails a restore document all or nothing, like iptables-restore', async () => {
    const fake = new FakeNetRunner();
    const start = fake.render();
    await assert.rejects(
      fake.run(['/usr/sbin/iptables-restore', '--noflush'], {
        input: '*raw\n:HOSTPLANE-X - [0:0]\n-A NOPE -j ACCEPT\nCOMMIT\n',
      }),
      /Chain 'NOPE' does not exist/,
    );
    assert.equal(fake.render(), start);
  });
});
