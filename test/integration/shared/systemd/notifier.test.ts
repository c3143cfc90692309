// The real sd-notify addon against a real unix datagram socket bound by the test.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRunner } from '../../../../shared/exec/index.ts';
import { silentLogger } from '../../../../shared/log/index.ts';
import { createNotifier } from '../../../../shared/systemd/index.ts';
import {
  bindNotifySocket,
  PYTHON,
  type NotifySocket,
} from '../../../fixtures/tiny-daemon/notify-socket.ts';

describe('createNotifier with the sd-notify addon', () => {
  let dir = '';
  let sock: NotifySocket | undefined;
  const saved = process.env['NOTIFY_SOCKET'];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hostplane-notify-'));
    const runner = createRunner({ log: silentLogger(), allow: [PYTHON] });
    sock = await bindNotifySocket(runner, path.join(dir, 'notify.sock'));
    // the addon's sd_notify() reads NOTIFY_SOCKET from the real process environment
    process.env['NOTIFY_SOCKET'] = sock.path;
  });
  after(async () => {
    if (saved === undefined) delete process.env['NOTIFY_SOCKET'];
    else process.env['NOTIFY_SOCKET'] = saved;
    await sock?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers each state as one datagram from this process', async () => {
    const s = sock!;
    const n = createNotifier({ log: silentLogger() });
    assert.equal(n.enabled, true);
    n.ready('serving');
    n.reloading();
    n.ready();
    n.stopping();
    await s.waitFor((m) => m.fields['STOPPING'] === '1');
    assert.deepEqual(
      s.messages.map((m) => Object.keys(m.fields)),
      [['READY', 'STATUS'], ['RELOADING', 'MONOTONIC_USEC'], ['READY'], ['STOPPING']],
    );
    assert.equal(s.messages[0]?.fields['STATUS'], 'serving');
    assert.ok(s.messages.every((m) => m.pid === process.pid));
  });
});
