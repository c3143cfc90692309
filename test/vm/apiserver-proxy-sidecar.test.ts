// apiserver-proxy-sidecar where the dev machines cannot run it: a kernel with the dummy link type
// and systemd as PID 1. The daemon runs as a Type=notify unit inside a network namespace the test
// creates (NetworkNamespacePath=), so the VM's own interfaces are never touched.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { createRunner } from '../../shared/exec/index.ts';
import { silentLogger } from '../../shared/log/index.ts';
import { BIN, vmSkipReason } from './helpers.ts';

const skip = await vmSkipReason();
const IP = '/usr/sbin/ip';
const NS = 'hp-vm-sidecar';
const UNIT = 'hp-apiproxy-sidecar';
const CONFIG = '/run/hp-apiproxy-sidecar.toml';
const STATE = '/run/hp-apiproxy-sidecar.state.json';

describe('apiserver-proxy-sidecar as a systemd unit', { skip, timeout: 600_000 }, () => {
  const runner = createRunner({ log: silentLogger(), allow: [IP, BIN.systemctl, BIN.systemdRun] });
  const inNs = (...args: string[]) => runner.run([IP, 'netns', 'exec', NS, IP, ...args]);
  const systemctl = (...args: string[]) =>
    runner.run([BIN.systemctl, ...args], { timeoutMs: 120_000, okCodes: [0, 1, 3, 4, 5] });

  before(async () => {
    await runner.run([IP, 'netns', 'add', NS]);
    await inNs('link', 'set', 'lo', 'up');
    await writeFile(
      CONFIG,
      [
        'ip_address = ["10.96.0.2", "fd00::2"]',
        'interface = "hp-proxy0"',
        'setup_iptables = true',
        'cleanup = true',
        `state_file = "${STATE}"`,
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    await systemctl('stop', UNIT);
    await systemctl('reset-failed', UNIT);
    await runner.run([IP, 'netns', 'del', NS]).catch(() => undefined);
    await rm(CONFIG, { force: true });
  });

  it('is active only once the dummy link, its addresses and rules are in place; stop removes them', async () => {
    const daemon = [
      BIN.node,
      '--import',
      'tsx',
      'daemons/apiserver-proxy-sidecar/main.ts',
      '--config',
      CONFIG,
    ];
    // without --no-block, systemd-run returns once the unit is active, i.e. after READY=1
    await runner.run(
      [
        BIN.systemdRun,
        `--unit=${UNIT}`,
        '--quiet',
        '-p',
        'Type=notify',
        '-p',
        `NetworkNamespacePath=/run/netns/${NS}`,
        '-p',
        `WorkingDirectory=${process.cwd()}`,
        '-p',
        'TimeoutStartSec=180',
        '-p',
        `ExecStopPost=${[...daemon, '--stop-post'].join(' ')}`,
        ...daemon,
      ],
      { timeoutMs: 240_000 },
    );
    assert.equal((await systemctl('is-active', UNIT)).stdout.trim(), 'active');
    const status = (await systemctl('show', '-P', 'StatusText', UNIT)).stdout;
    assert.match(status, /last sync .*ip link add hp-proxy0 type dummy/);

    const link = JSON.parse(
      (await inNs('-j', '-d', 'addr', 'show', 'dev', 'hp-proxy0')).stdout,
    ) as {
      flags: string[];
      linkinfo?: { info_kind?: string };
      addr_info: { local: string; prefixlen: number }[];
    }[];
    assert.equal(link[0]!.linkinfo?.info_kind, 'dummy');
    assert.ok(link[0]!.flags.includes('UP'));
    assert.deepEqual(
      link[0]!.addr_info
        .map((a) => `${a.local}/${a.prefixlen}`)
        .filter((a) => !a.startsWith('fe80:')) // the kernel's own link-local address
        .sort(),
      ['10.96.0.2/32', 'fd00::2/128'],
    );
    const save = await runner.run([
      IP,
      'netns',
      'exec',
      NS,
      '/usr/sbin/iptables-save',
      '-t',
      'raw',
    ]);
    assert.match(save.stdout, /-A PREROUTING -j HP-APIPROXY-PREROUTING/);

    assert.equal((await systemctl('stop', UNIT)).code, 0);
    const links = await inNs('-j', 'link', 'show');
    assert.deepEqual(
      (JSON.parse(links.stdout) as { ifname: string }[]).map((l) => l.ifname),
      ['lo'],
    );
    const after = await runner.run([IP, 'netns', 'exec', NS, '/usr/sbin/iptables-save']);
    assert.doesNotMatch(after.stdout, /HP-APIPROXY/);
  });
});
