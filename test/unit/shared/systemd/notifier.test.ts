import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createNotifier, type NotifySender } from '../../../../shared/systemd/index.ts';
import { createMemoryLogger, silentLogger } from '../../../../shared/log/index.ts';

function recorder(): NotifySender & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    send(state) {
      sent.push(state);
    },
  };
}

describe('createNotifier', () => {
  it('sends nothing and does not fail when NOTIFY_SOCKET is unset', () => {
    const sd = recorder();
    const n = createNotifier({ log: silentLogger(), env: {}, sd });
    n.ready('up');
    n.status('x');
    n.reloading();
    n.stopping();
    n.startWatchdog();
    n.stop();
    assert.equal(n.enabled, false);
    assert.deepEqual(sd.sent, []);
  });

  it('sends READY=1 with STATUS=, RELOADING=1 with MONOTONIC_USEC, and STOPPING=1', () => {
    const sd = recorder();
    const n = createNotifier({
      log: silentLogger(),
      env: { NOTIFY_SOCKET: '/run/x.sock' },
      sd,
      monotonicUsec: () => 123_456_789n,
    });
    n.ready('listening on 127.0.0.1:1\nsecond line');
    n.reloading();
    n.ready();
    n.status('draining');
    n.stopping();
    assert.deepEqual(sd.sent, [
      'READY=1\nSTATUS=listening on 127.0.0.1:1 second line',
      'RELOADING=1\nMONOTONIC_USEC=123456789',
      'READY=1',
      'STATUS=draining',
      'STOPPING=1',
    ]);
  });

  it('takes MONOTONIC_USEC from CLOCK_MONOTONIC by default', () => {
    const sd = recorder();
    const n = createNotifier({ log: silentLogger(), env: { NOTIFY_SOCKET: '/run/x.sock' }, sd });
    const before = process.hrtime.bigint() / 1000n;
    n.reloading();
    const after = process.hrtime.bigint() / 1000n;
    const stamp = BigInt(/MONOTONIC_USEC=(\d+)/.exec(sd.sent[0] ?? '')?.[1] ?? '-1');
    assert.ok(stamp >= before && stamp <= after);
  });

  it('pings the watchdog at half of WATCHDOG_USEC until stopped', (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const sd = recorder();
    const n = createNotifier({
      log: silentLogger(),
      env: { NOTIFY_SOCKET: '/run/x.sock', WATCHDOG_USEC: '4000000', WATCHDOG_PID: '42' },
      sd,
      pid: 42,
    });
    n.startWatchdog();
    assert.deepEqual(sd.sent, ['WATCHDOG=1']);
    t.mock.timers.tick(1999);
    assert.equal(sd.sent.length, 1);
    t.mock.timers.tick(1);
    assert.equal(sd.sent.length, 2);
    t.mock.timers.tick(4000);
    assert.equal(sd.sent.length, 4);
    n.stop();
    t.mock.timers.tick(10_000);
    assert.equal(sd.sent.length, 4);
  });

  it('leaves the watchdog alone when it is meant for another pid or not requested', () => {
    const sd = recorder();
    createNotifier({
      log: silentLogger(),
      env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '7' },
      sd,
      pid: 8,
    }).startWatchdog();
    createNotifier({ log: silentLogger(), env: { NOTIFY_SOCKET: '/x' }, sd }).startWatchdog();
    assert.deepEqual(sd.sent, []);
  });

  it('logs a failed send and carries on', () => {
    const { log, records } = createMemoryLogger();
    const n = createNotifier({
      log,
      env: { NOTIFY_SOCKET: '/x' },
      sd: {
        send() {
          throw new Error('connect ENOENT');
        },
      },
    });
    n.ready();
    assert.ok(
      records.some(
        (r) => r['msg'] === 'sending sd_notify state failed' && r['state'] === 'READY=1',
      ),
    );
  });
});
