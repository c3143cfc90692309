// The sidecar's sync and cleanup on shared/net's stateful fake: which link and addresses are
// ours, what cleanup removes, and that ownership survives a restart through the state file.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createMemoryLogger, silentLogger } from '../../../../shared/log/index.ts';
import { FakeNetRunner } from '../../../../shared/net/fake.ts';
import type { NetTools } from '../../../../shared/net/index.ts';
import { createSidecarMetrics } from '../../../../daemons/apiserver-proxy-sidecar/metrics.ts';
import { desiredState, type PlanConfig } from '../../../../daemons/apiserver-proxy-sidecar/plan.ts';
import { Sidecar } from '../../../../daemons/apiserver-proxy-sidecar/sidecar.ts';

const BASE: PlanConfig = {
  ip_address: ['10.96.0.2'],
  kubernetes_service_ip_address: [],
  interface: 'lo',
  port: 443,
  setup_iptables: false,
};

let dir: string;
let n = 0;

function sidecar(
  fake: FakeNetRunner,
  cfg: Partial<PlanConfig>,
  stateFile?: string,
  tools: NetTools = fake.tools,
): Sidecar {
  const want = desiredState({ ...BASE, ...cfg });
  return new Sidecar(want, {
    net: { runner: fake, tools },
    log: silentLogger(),
    metrics: createSidecarMetrics(),
    stateFile: stateFile ?? path.join(dir, `state-${n++}.json`),
  });
}

describe('Sidecar on the fake network', () => {
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hp-sidecar-unit-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a missing interface as a dummy link, brings it up, and cleanup deletes it', async () => {
    const fake = new FakeNetRunner();
    const before = fake.render();
    const s = sidecar(fake, { interface: 'hp-proxy0', ip_address: ['10.96.0.2', 'fd00::2'] });
    const report = await s.sync();
    assert.deepEqual(report.changes, [
      'ip link add hp-proxy0 type dummy',
      'ip link set hp-proxy0 up',
      'ip addr add 10.96.0.2/32 dev hp-proxy0',
      'ip addr add fd00::2/128 dev hp-proxy0 nodad',
    ]);
    assert.match(fake.render(), /link hp-proxy0 dummy up/);
    assert.deepEqual(await s.cleanup(), ['ip link del hp-proxy0']);
    assert.equal(fake.render(), before);
  });

  it('never brings up, or deletes, an existing link it did not create', async () => {
    const fake = new FakeNetRunner();
    fake.links.set('eth9', { kind: 'veth', up: false, addresses: [] });
    const s = sidecar(fake, { interface: 'eth9' });
    assert.deepEqual((await s.sync()).changes, ['ip addr add 10.96.0.2/32 dev eth9']);
    assert.deepEqual(await s.cleanup(), ['ip addr del 10.96.0.2/32 dev eth9']);
    assert.match(fake.render(), /link eth9 veth down/);
  });

  it('leaves an address it found in place alone on cleanup, and removes the ones it added', async () => {
    const fake = new FakeNetRunner();
    fake.links.get('lo')!.addresses.push('10.96.0.1/32');
    const s = sidecar(fake, { kubernetes_service_ip_address: ['10.96.0.1'] });
    assert.deepEqual((await s.sync()).changes, ['ip addr add 10.96.0.2/32 dev lo']);
    assert.deepEqual(await s.cleanup(), ['ip addr del 10.96.0.2/32 dev lo']);
    assert.deepEqual(fake.links.get('lo')!.addresses, ['10.96.0.1/32']);
  });

  it('claims an address it re-adds after someone deleted it', async () => {
    const fake = new FakeNetRunner();
    fake.links.get('lo')!.addresses.push('10.96.0.2/32');
    const s = sidecar(fake, {});
    assert.deepEqual((await s.sync()).changes, []);
    fake.links.get('lo')!.addresses.length = 0;
    assert.deepEqual((await s.sync()).changes, ['ip addr add 10.96.0.2/32 dev lo']);
    assert.deepEqual(await s.cleanup(), ['ip addr del 10.96.0.2/32 dev lo']);
  });

  it('remembers what it added across processes through the state file (for --cleanup)', async () => {
    const fake = new FakeNetRunner();
    const state = path.join(dir, 'shared-state.json');
    await sidecar(fake, { ip_address: ['10.96.0.2', 'fd00::2'] }, state).sync();
    assert.deepEqual(JSON.parse(await readFile(state, 'utf8')), {
      version: 2,
      link: null,
      addresses: [
        { dev: 'lo', cidr: '10.96.0.2/32' },
        { dev: 'lo', cidr: 'fd00::2/128' },
      ],
      chains: [],
    });
    const later = sidecar(fake, { ip_address: ['10.96.0.2', 'fd00::2'] }, state);
    assert.equal((await later.cleanup()).length, 2);
    assert.deepEqual(fake.links.get('lo')!.addresses, []);
    assert.deepEqual(JSON.parse(await readFile(state, 'utf8')), {
      version: 2,
      link: null,
      addresses: [],
      chains: [],
    });
  });

  it('adds nothing until it can record it, fails every sync until then, and records it after', async () => {
    const fake = new FakeNetRunner();
    // the state directory is a dangling symlink: reading finds no file, writing fails
    const target = path.join(dir, 'later');
    await symlink(target, path.join(dir, 'dangling'));
    const state = path.join(dir, 'dangling', 'state.json');
    const s = sidecar(fake, {}, state);
    await assert.rejects(s.sync(), /writing state .*dangling\/state\.json/);
    await assert.rejects(s.sync(), /writing state/);
    assert.deepEqual(fake.links.get('lo')!.addresses, []);
    await mkdir(target);
    assert.deepEqual((await s.sync()).changes, ['ip addr add 10.96.0.2/32 dev lo']);
    assert.deepEqual(await sidecar(fake, {}, state).cleanup(), ['ip addr del 10.96.0.2/32 dev lo']);
  });

  it('records an address again when a --cleanup beside it emptied the file', async () => {
    const fake = new FakeNetRunner();
    const state = path.join(dir, 'beside.json');
    const daemon = sidecar(fake, {}, state);
    await daemon.sync();
    // the --cleanup process: removes the address and writes an empty record
    await sidecar(fake, {}, state).cleanup();
    assert.deepEqual((await daemon.sync()).changes, ['ip addr add 10.96.0.2/32 dev lo']);
    // a --cleanup whose last write lands after the daemon put the address back
    await writeFile(state, '{"version":2,"link":null,"addresses":[]}\n');
    assert.deepEqual((await daemon.sync()).changes, []);
    assert.deepEqual(await sidecar(fake, {}, state).cleanup(), ['ip addr del 10.96.0.2/32 dev lo']);
    assert.deepEqual(fake.links.get('lo')!.addresses, []);
  });

  it('removes an address from the device it added it to, not from a new interface', async () => {
    const fake = new FakeNetRunner();
    fake.links.set('br-x', { kind: 'bridge', up: true, addresses: ['10.96.0.2/32'] });
    const state = path.join(dir, 'moved.json');
    await sidecar(fake, { interface: 'lo' }, state).sync();
    assert.deepEqual((await sidecar(fake, { interface: 'br-x' }, state).sync()).changes, []);
    assert.deepEqual(await sidecar(fake, { interface: 'br-x' }, state).cleanup(), [
      'ip addr del 10.96.0.2/32 dev lo',
    ]);
    assert.deepEqual(fake.links.get('br-x')!.addresses, ['10.96.0.2/32']);
    assert.deepEqual(fake.links.get('lo')!.addresses, []);
  });

  it('claims an address an old state file lists without its device when it is on the interface, and cleanup removes it', async () => {
    const fake = new FakeNetRunner();
    fake.links.get('lo')!.addresses.push('10.96.0.2/32');
    const state = path.join(dir, 'v1-present.json');
    await writeFile(state, '{"link":null,"addresses":["10.96.0.2/32"]}\n');
    assert.deepEqual((await sidecar(fake, { interface: 'lo' }, state).sync()).changes, []);
    assert.deepEqual(JSON.parse(await readFile(state, 'utf8')), {
      version: 2,
      link: null,
      addresses: [{ dev: 'lo', cidr: '10.96.0.2/32' }],
      chains: [],
    });
    assert.deepEqual(await sidecar(fake, { interface: 'lo' }, state).cleanup(), [
      'ip addr del 10.96.0.2/32 dev lo',
    ]);
    assert.deepEqual(fake.links.get('lo')!.addresses, []);
  });

  it('drops an address an old state file lists without its device when it is not on the interface, says so, and touches no device', async () => {
    const fake = new FakeNetRunner();
    // where the older version put it before `interface` changed: not ours to guess
    fake.links.set('br-x', { kind: 'bridge', up: true, addresses: ['10.96.0.2/32'] });
    const state = path.join(dir, 'v1-absent.json');
    await writeFile(state, '{"link":null,"addresses":["10.96.0.2/32"]}\n');
    const before = fake.render();
    const { log, records } = createMemoryLogger();
    const s = new Sidecar(desiredState({ ...BASE, interface: 'lo', ip_address: [] }), {
      net: { runner: fake, tools: fake.tools },
      log,
      metrics: createSidecarMetrics(),
      stateFile: state,
    });
    assert.deepEqual(await s.cleanup(), []);
    assert.equal(fake.render(), before);
    assert.deepEqual(fake.mutations(), []);
    assert.ok(
      records.some(
        (r) =>
          r['level'] === 'warn' &&
          /10\.96\.0\.2\/32 is recorded without its device .* not on lo/.test(String(r['msg'])),
      ),
      JSON.stringify(records),
    );
    assert.deepEqual(JSON.parse(await readFile(state, 'utf8')), {
      version: 2,
      link: null,
      addresses: [],
      chains: [],
    });
  });

  it('applies rules once and makes no mutating call when nothing drifted', async () => {
    const fake = new FakeNetRunner();
    const s = sidecar(fake, { ip_address: ['10.96.0.2', 'fd00::2'], setup_iptables: true });
    const first = await s.sync();
    assert.deepEqual(
      first.changes.filter((c) => c.endsWith('rules')),
      ['ipv4 raw rules', 'ipv4 filter rules', 'ipv6 raw rules', 'ipv6 filter rules'],
    );
    const mutations = fake.mutations().length;
    const state = fake.render();
    assert.deepEqual((await s.sync()).changes, []);
    assert.equal(fake.mutations().length, mutations);
    assert.equal(fake.render(), state);
  });

  it('leaves an address already there with another prefix alone and still syncs the rest', async () => {
    const fake = new FakeNetRunner();
    fake.links.get('lo')!.addresses.push('fd00::2/64', '10.96.0.2/24');
    const cfg = { ip_address: ['fd00::2', '10.96.0.2', '10.96.0.3'], setup_iptables: true };
    const report = await sidecar(fake, cfg, path.join(dir, 'prefix.json')).sync();
    assert.deepEqual(report.changes, [
      'ip addr add 10.96.0.3/32 dev lo',
      'ipv4 raw rules',
      'ipv4 filter rules',
      'ipv6 raw rules',
      'ipv6 filter rules',
    ]);
    const later = sidecar(fake, cfg, path.join(dir, 'prefix.json'));
    assert.deepEqual(
      (await later.cleanup()).filter((c) => c.startsWith('ip ')),
      ['ip addr del 10.96.0.3/32 dev lo'],
    );
    assert.deepEqual(fake.links.get('lo')!.addresses, ['fd00::2/64', '10.96.0.2/24']);
  });

  it('keeps the state file as it was when a cleanup cannot read the links', async () => {
    const fake = new FakeNetRunner();
    const state = path.join(dir, 'unread-links.json');
    await sidecar(fake, {}, state).sync();
    const before = await readFile(state, 'utf8');
    const blind = sidecar(fake, {}, state, { ...fake.tools, ip: '/nonexistent/ip' });
    await assert.rejects(blind.cleanup(), /nonexistent\/ip/);
    assert.equal(await readFile(state, 'utf8'), before, 'what it added is still on record');
    assert.deepEqual(await sidecar(fake, {}, state).cleanup(), ['ip addr del 10.96.0.2/32 dev lo']);
  });

  it('applies the other tables when one fails, and the sync still fails with the reason', async () => {
    const fake = new FakeNetRunner();
    // the fake refuses a binary it does not know: ip6tables-restore fails, nothing else does
    const tools = { ...fake.tools, ip6tablesRestore: '/nonexistent/ip6tables-restore' };
    const s = sidecar(
      fake,
      { ip_address: ['fd00::2', '10.96.0.2'], setup_iptables: true },
      undefined,
      tools,
    );
    await assert.rejects(s.sync(), /applying ipv6 raw rules: .*; applying ipv6 filter rules: /);
    assert.deepEqual(fake.links.get('lo')!.addresses, ['fd00::2/128', '10.96.0.2/32']);
    assert.match(fake.render(), /ipv4\/raw :HP-APIPROXY-PREROUTING/);
    assert.match(fake.render(), /ipv4\/filter :HP-APIPROXY-INPUT/);
  });

  it('removes recorded chains the config no longer asks for, on sync and on cleanup', async () => {
    const fake = new FakeNetRunner();
    const state = path.join(dir, 'chains.json');
    const both = { ip_address: ['10.96.0.2', 'fd00::2'], setup_iptables: true };
    const v4 = { ip_address: ['10.96.0.2'], setup_iptables: true };
    await sidecar(fake, both, state).sync();
    const report = await sidecar(fake, v4, state).sync();
    assert.deepEqual(report.changes, ['ipv6 raw rules', 'ipv6 filter rules']);
    assert.doesNotMatch(fake.render(), /ipv6.*HP-APIPROXY/);
    assert.match(fake.render(), /ipv4\/filter :HP-APIPROXY-INPUT/);
    await sidecar(fake, both, state).sync();
    await sidecar(fake, { ...v4, setup_iptables: false }, state).cleanup();
    assert.doesNotMatch(fake.render(), /HP-APIPROXY/);
  });

  it('touches ip6tables only when an IPv6 address needs rules', async () => {
    const fake = new FakeNetRunner();
    await sidecar(fake, { setup_iptables: true }).sync();
    assert.ok(!fake.calls.some((c) => c.argv[0]?.includes('ip6tables')));
  });
});
