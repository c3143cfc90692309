import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { initPidOf, isolatedArgv, nsInitPath, DEV_NSINIT } from '../../../../shared/ns/index.ts';

const base = { unshare: '/usr/bin/unshare', init: '/usr/lib/hostplane/hostplane-nsinit' };

describe('isolatedArgv', () => {
  const table: { name: string; opts: Parameters<typeof isolatedArgv>[0]; want: string }[] = [
    {
      name: 'all three namespaces, a cgroup and a status fd',
      opts: {
        ...base,
        pid: true,
        mount: true,
        net: true,
        cgroupDir: '/sys/fs/cgroup/hp/jobs/x',
        statusFd: 3,
        command: 'sleep',
        args: ['10'],
      },
      want:
        '/usr/bin/unshare --pid --fork --kill-child --mount --propagation private --mount-proc ' +
        '--net -- /usr/lib/hostplane/hostplane-nsinit --cgroup /sys/fs/cgroup/hp/jobs/x --lo ' +
        '--status-fd 3 -- sleep 10',
    },
    {
      name: 'a private tmp of 64 MiB, mounted by the init',
      opts: {
        ...base,
        pid: true,
        mount: true,
        net: false,
        privateTmpBytes: 64 * 1024 * 1024,
        command: 'sh',
        args: [],
      },
      want:
        '/usr/bin/unshare --pid --fork --kill-child --mount --propagation private --mount-proc ' +
        '-- /usr/lib/hostplane/hostplane-nsinit --private-tmp 67108864 -- sh',
    },
    {
      name: 'only a PID namespace: no /proc remount, no loopback',
      opts: { ...base, pid: true, mount: false, net: false, command: '/bin/true', args: [] },
      want: '/usr/bin/unshare --pid --fork --kill-child -- /usr/lib/hostplane/hostplane-nsinit -- /bin/true',
    },
    {
      name: 'mount without pid keeps the host /proc',
      opts: { ...base, pid: false, mount: true, net: true, command: 'ip', args: ['-j', 'link'] },
      want:
        '/usr/bin/unshare --mount --propagation private --net -- ' +
        '/usr/lib/hostplane/hostplane-nsinit --lo -- ip -j link',
    },
  ];
  for (const t of table) {
    it(`renders ${t.name}`, () => {
      assert.equal(isolatedArgv(t.opts).join(' '), t.want);
    });
  }

  it('refuses a private tmp without a mount namespace or with a size that is no byte count', () => {
    const o = { ...base, pid: true, net: true, command: 'sh', args: [] };
    assert.throws(
      () => isolatedArgv({ ...o, mount: false, privateTmpBytes: 1024 }),
      /building the argv of sh: a private tmp needs a mount namespace .* mount=false/,
    );
    for (const privateTmpBytes of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => isolatedArgv({ ...o, mount: true, privateTmpBytes }), /privateTmpBytes/);
    }
  });

  it('passes arguments that look like options after the separator, untouched', () => {
    const argv = isolatedArgv({
      ...base,
      pid: true,
      mount: true,
      net: true,
      command: '--help',
      args: ['--cgroup', '/x', '--', 'a b'],
    });
    assert.deepEqual(argv.slice(-5), ['--help', '--cgroup', '/x', '--', 'a b']);
    assert.equal(argv.filter((a) => a === '--').length, 3);
  });
});

describe('initPidOf', () => {
  it('returns the first child of unshare once it appears', async () => {
    const answers = ['', '\n', '4242 '];
    const seen: string[] = [];
    const pid = await initPidOf(100, {
      intervalMs: 1,
      readFile: (p) => {
        seen.push(p);
        return Promise.resolve(answers.shift() ?? '');
      },
    });
    assert.equal(pid, 4242);
    assert.equal(seen.length, 3);
    assert.equal(seen[0], '/proc/100/task/100/children');
  });

  it('gives up after its timeout with what it was looking for', async () => {
    await assert.rejects(
      initPidOf(7, { timeoutMs: 20, intervalMs: 2, readFile: () => Promise.resolve('') }),
      /finding the init of unshare 7: no child after 20 ms/,
    );
  });

  it('fails at once when unshare is gone', async () => {
    await assert.rejects(
      initPidOf(7, { readFile: () => Promise.reject(new Error('ENOENT: no such file')) }),
      /finding the init of unshare 7: reading \/proc\/7\/task\/7\/children: ENOENT/,
    );
  });
});

describe('nsInitPath', () => {
  it('prefers HOSTPLANE_NSINIT, else falls back to the installed or the checkout copy', () => {
    assert.equal(nsInitPath({ HOSTPLANE_NSINIT: '/opt/x/nsinit' }), '/opt/x/nsinit');
    const p = nsInitPath({});
    assert.ok(p === '/usr/lib/hostplane/hostplane-nsinit' || p === DEV_NSINIT);
  });
});
