// Sandbox sessions of the webterminal in their own cgroups, for real (inside the test VM:
// systemd, cgroup v2). The daemon's session cgroups live under a cgroup this test creates.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { Cgroup } from '../../shared/cgroup/index.ts';
import { findBinary } from '../../shared/exec/index.ts';
import { silentLogger } from '../../shared/log/index.ts';
import { nsInitPath } from '../../shared/ns/index.ts';
import { SessionCgroups } from '../../daemons/webterminal/cgroups.ts';
import {
  attachTerm,
  startHarness,
  testConfig,
  TOKENS,
  type Harness,
  type Term,
} from '../integration/webterminal/helpers.ts';
import { testCgroup, vmSkipReason, waitFor } from './helpers.ts';

const skip = await vmSkipReason();
const bearer = { authorization: `Bearer ${TOKENS.alice}` };

describe('webterminal session cgroups under cgroup v2', { skip, timeout: 10 * 60_000 }, () => {
  let base: Cgroup;
  let h: Harness;
  const origin = (): Record<string, string> => ({ origin: h.wt.origin });

  before(async () => {
    base = await testCgroup('webterminal');
    const log = silentLogger();
    const config = testConfig(
      '[[targets]]\nname = "limited"\ntype = "sandbox"\ncommand = ["/bin/sh", "-i"]\n' +
        '[targets.limits]\npids_max = 16\nmemory_max = "48MiB"\n',
    );
    const { cgroups } = await SessionCgroups.setup({ mode: 'required', log, base });
    assert.ok(cgroups !== null);
    const [unshare, setsid, setpriv] = await Promise.all(
      ['unshare', 'setsid', 'setpriv'].map((b) => findBinary(b)),
    );
    const nsinit = nsInitPath();
    assert.ok(existsSync(nsinit), `${nsinit} is built (npm run build, or any integration test)`);
    h = await startHarness({
      config,
      log,
      sandbox: {
        unshare: unshare!,
        setsid: setsid!,
        setpriv: setpriv!,
        nsinit,
        term: 'xterm',
        cgroups: { sessions: cgroups, defaults: () => config.sandbox.limits },
      },
    });
  });

  after(async () => {
    await h.wt.close();
    await base.kill().catch(() => undefined);
    await base.remove({ timeoutMs: 10_000 });
  });

  async function open(target: string): Promise<{ id: string; term: Term; cg: Cgroup }> {
    const c = await h.api('POST', '/api/terminals', {
      token: TOKENS.alice,
      body: { target },
      headers: origin(),
    });
    assert.equal(c.status, 201, JSON.stringify(c.json));
    const g = await h.api('GET', `/api/terminals/${c.json.id}`, { token: TOKENS.alice });
    assert.equal(g.status, 200, JSON.stringify(g.json));
    const term = await attachTerm(h, g.json.attach.url, { ...bearer, ...origin() });
    return { id: c.json.id, term, cg: base.child('sessions').child(c.json.id) };
  }

  it('runs the shell in its own cgroup with the limits, and deleting the session ends every process and removes the cgroup', async () => {
    const { id, term, cg } = await open('limited');
    term.session.write('cat /proc/self/cgroup; echo uid=$(id -u)\n');
    await term.waitFor(`0::${base.rel}/sessions/${id}`, 60_000);
    await term.waitFor('uid=65534', 60_000);
    assert.equal((await cg.read('pids.max')).trim(), '16');
    assert.equal((await cg.read('memory.max')).trim(), String(48 << 20));
    // the other keys of [sandbox.limits] are the defaults
    assert.equal((await cg.read('cpu.max')).trim(), '100000 100000');

    // memory.max: the hog is OOM-killed, the shell goes on
    term.session.write('tail /dev/zero; echo tail-rc=$?\n');
    await term.waitFor('tail-rc=137', 120_000);
    assert.ok((await cg.memoryEvents()).oomKill >= 1, 'memory.events counts the OOM kill');

    // pids.max: a fork bomb stops at 16 processes (dash gives up the command line there)
    term.session.write('i=0; while [ $i -lt 40 ]; do sleep 1000 & i=$((i+1)); done\n');
    await term.waitFor(/Cannot fork|Resource temporarily unavailable/, 120_000);
    assert.ok((await cg.pidsCurrent()) <= 16, `pids.current ${await cg.pidsCurrent()}`);
    const inside = await cg.procs();
    assert.ok(inside.length >= 10, `the sleeps are in the session cgroup: ${inside.join(' ')}`);

    const del = await h.api('DELETE', `/api/terminals/${id}`, {
      token: TOKENS.alice,
      headers: origin(),
    });
    assert.equal(del.status, 204);
    assert.equal(existsSync(cg.path), false, 'the session cgroup is gone once DELETE answered');
    for (const pid of inside) {
      const alive = await readFile(`/proc/${pid}/cmdline`, 'utf8').then(
        (c) => c.includes('sleep'),
        () => false,
      );
      assert.equal(alive, false, `process ${pid} of the session is still alive`);
    }
  });

  it('removes the cgroup when the shell exits by itself', async () => {
    const { term, cg } = await open('shell');
    term.session.write('echo ready-$((6*7))\n');
    await term.waitFor('ready-42', 60_000);
    assert.ok(existsSync(cg.path));
    assert.equal((await cg.read('pids.max')).trim(), '512', 'the [sandbox.limits] default');
    term.session.write('exit\n');
    await term.status;
    await waitFor('the session cgroup to go', () =>
      Promise.resolve(existsSync(cg.path) ? undefined : true),
    );
  });
});
