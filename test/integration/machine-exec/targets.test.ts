// The serial and upstream console targets of machinebroker, through the whole chain.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createRunner, findBinary, type Spawned } from '../../../shared/exec/index.ts';
import { silentLogger } from '../../../shared/log/index.ts';
import { ExecRefusedError, connectExec } from '../../../shared/stream/client.ts';
import { eventually, openCollected, tempDir } from './helpers.ts';
import { startChain, type Chain } from './fixture.ts';
import { stat } from 'node:fs/promises';

const EXEC = (name: string, tty = false): string =>
  `/apis/compute.ironcore.dev/namespaces/default/machines/${name}/exec?tty=${tty}`;

describe('serial console target', () => {
  let chain: Chain;
  let console_: Spawned;
  let socket: string;

  before(async () => {
    // a process serving a shell on a PTY behind a unix socket, as QEMU's -serial unix:PATH,server
    socket = path.join(await tempDir('serial'), 'ttyS0.sock');
    const socat = await findBinary('socat');
    const runner = createRunner({ log: silentLogger(), allow: [socat] });
    console_ = runner.spawn(
      [
        socat,
        `UNIX-LISTEN:${socket},fork,mode=600`,
        'EXEC:/bin/sh -i,pty,setsid,ctty,stderr,echo=0',
      ],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    );
    await eventually(
      () =>
        stat(socket).then(
          (s) => s.isSocket(),
          () => false,
        ),
      10_000,
      'the serial socket',
    );
    chain = await startChain([
      { name: 'vm1', target: `{ type = "serial", socket = ${JSON.stringify(socket)} }` },
    ]);
  });

  after(async () => {
    await chain.close();
    console_.kill('SIGTERM');
    await console_.exited;
  });

  it('carries input and output of the serial console, one session at a time', async () => {
    const s = await openCollected(chain.gatewayUrl + EXEC('vm1', true), { tls: chain.alice });
    s.session.write('echo serial-$((40+2))\n');
    await s.waitFor('serial-42');
    await assert.rejects(
      connectExec(chain.gatewayUrl + EXEC('vm1', true), {
        tls: chain.alice,
        onOutput: () => undefined,
      }),
      (err: unknown) =>
        err instanceof ExecRefusedError &&
        err.status === 409 &&
        /serial console of machine default\/vm1 is in use by another session/.test(err.message),
    );
    s.session.close();
    await s.status;
    await eventually(
      () => Promise.resolve(chain.broker.sessionCount() === 0),
      5_000,
      'the session to end',
    );
    const again = await openCollected(chain.gatewayUrl + EXEC('vm1', true), { tls: chain.alice });
    again.session.write('echo again-$((1+1))\n');
    await again.waitFor('again-2');
    again.session.close();
  });
});

/** An `upstream` target to `remote`'s gateway with its user's credentials; `name` there, if given. */
function upstreamTarget(remote: Chain, name?: string): string {
  const file = (f: string): string => JSON.stringify(path.join(remote.credsDir, f));
  return (
    `{ type = "upstream", url = ${JSON.stringify(remote.gatewayUrl)}, ` +
    (name === undefined ? '' : `name = "${name}", `) +
    `ca_file = ${file('ca.crt')}, cert_file = ${file('client.crt')}, key_file = ${file('client.key')} }`
  );
}

describe('upstream target', () => {
  let remote: Chain;
  let front: Chain;

  before(async () => {
    remote = await startChain([{ name: 'm1', target: '{ type = "sandbox" }' }]);
    front = await startChain([
      { name: 'far', target: upstreamTarget(remote, 'm1') },
      { name: 'gone', target: upstreamTarget(remote) },
    ]);
  });

  after(async () => {
    await front.close();
    await remote.close();
  });

  it('runs the session on the machine behind another exec-gateway', async () => {
    const s = await openCollected(front.gatewayUrl + EXEC('far'), { tls: front.alice });
    s.session.write('echo six hops; exit 4\n');
    s.session.closeStdin();
    assert.deepEqual(await s.status, { kind: 'exited', code: 4 });
    assert.equal(s.stdout(), 'six hops\n');
  });

  it('relays the upstream gateway refusal to the user', async () => {
    await assert.rejects(
      connectExec(front.gatewayUrl + EXEC('gone'), { tls: front.alice, onOutput: () => undefined }),
      (err: unknown) =>
        err instanceof ExecRefusedError &&
        err.status === 404 &&
        /default\/gone not found/.test(err.message),
    );
  });
});

describe('upstream target, broker stopping', () => {
  let remote: Chain;
  let front: Chain;

  before(async () => {
    remote = await startChain([{ name: 'm1', target: '{ type = "sandbox" }' }]);
    front = await startChain([{ name: 'far', target: upstreamTarget(remote, 'm1') }]);
  });

  after(async () => {
    await front.close();
    await remote.close();
  });

  it('ends an open upstream session with the stopping status when the broker stops', async () => {
    const s = await openCollected(front.gatewayUrl + EXEC('far'), { tls: front.alice });
    s.session.write('echo ready\n');
    await s.waitFor('ready');
    await front.broker.close(0);
    assert.deepEqual(await s.status, { kind: 'error', message: 'the runtime is stopping' });
    assert.equal(s.stdout(), 'ready\n');
  });
});
