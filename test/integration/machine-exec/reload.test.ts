// Reload: machinepoollet follows a changed runtime socket, also back to the first one;
// machinebroker takes new machines and refuses, changing nothing, what needs a restart.
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ConnectionOptions } from 'node:tls';
import { startBroker, type Broker } from '../../../daemons/machinebroker/broker.ts';
import { configSchema, type PoolletConfig } from '../../../daemons/machinepoollet/config.ts';
import { startPoollet, type Poollet } from '../../../daemons/machinepoollet/server.ts';
import { parseConfig } from '../../../shared/config/index.ts';
import { createRuntimeClient } from '../../../shared/stream/iri.ts';
import { silentLogger } from '../../../shared/log/index.ts';
import { ExecRefusedError } from '../../../shared/stream/client.ts';
import { brokerConfig, openCollected, sandboxDeps, tempDir } from './helpers.ts';
import { createTestCa } from './pki.ts';

describe('machinepoollet reload', () => {
  let dir: string;
  const brokers: Broker[] = [];
  let poollet: Poollet;
  let alice: ConnectionOptions;
  let config: (socket: string, timeout?: string) => PoolletConfig;

  before(async () => {
    dir = await tempDir('reload');
    const ca = await createTestCa();
    const deps = { log: silentLogger(), sandbox: await sandboxDeps() };
    // runtime A has machine only-a, runtime B only-b
    for (const which of ['a', 'b']) {
      const sub = path.join(dir, which);
      await mkdir(sub);
      brokers.push(
        await startBroker(
          brokerConfig(
            sub,
            `[[machines]]\nid = "${which}"\nnamespace = "default"\nname = "only-${which}"\ntarget = { type = "sandbox", command = ["/bin/true"] }\n`,
          ),
          deps,
        ),
      );
    }
    const f = await ca.write(dir, 'poollet', await ca.issue('poollet', { server: ['127.0.0.1'] }));
    config = (socket, timeout = '5s') =>
      parseConfig(
        `listen = "127.0.0.1:0"\n[tls]\nca_file = ${JSON.stringify(f.ca_file)}\n` +
          `cert_file = ${JSON.stringify(f.cert_file)}\nkey_file = ${JSON.stringify(f.key_file)}\n` +
          `[runtime]\nsocket = ${JSON.stringify(socket)}\ntimeout = "${timeout}"\n` +
          `[[policy]]\nusers = ["alice"]\n`,
        'poollet.toml',
        configSchema,
      );
    poollet = await startPoollet(config(brokers[0]!.socketPath), { log: silentLogger() });
    const leaf = await ca.issue('alice');
    alice = { ca: ca.cert, cert: leaf.cert, key: leaf.key };
  });

  after(async () => {
    await poollet.close(100);
    for (const b of brokers) await b.close(100);
    await rm(dir, { recursive: true, force: true });
  });

  /** 'ok' when machine default/NAME ran through the poollet, else the refusal's status */
  const exec = async (name: string): Promise<string | number> => {
    try {
      const s = await openCollected(
        `https://127.0.0.1:${poollet.port}/apis/compute.ironcore.dev/namespaces/default/machines/${name}/exec`,
        { tls: alice },
      );
      const st = await s.status;
      return st.kind === 'exited' && st.code === 0 ? 'ok' : JSON.stringify(st);
    } catch (err) {
      if (err instanceof ExecRefusedError) return err.status;
      throw err;
    }
  };

  it('follows the runtime socket from A to B and back to A', async () => {
    const [a, b] = [brokers[0]!.socketPath, brokers[1]!.socketPath];
    assert.deepEqual([await exec('only-a'), await exec('only-b')], ['ok', 404]);
    await poollet.reload(config(b));
    assert.deepEqual([await exec('only-a'), await exec('only-b')], [404, 'ok']);
    await poollet.reload(config(a));
    assert.deepEqual([await exec('only-a'), await exec('only-b')], ['ok', 404], 'back on A');
    await poollet.reload(config(a, '7s')); // a new timeout alone: a new client, same runtime
    assert.equal(await exec('only-a'), 'ok');
  });
});

describe('machinebroker reload', () => {
  it('takes new machines and refuses a changed [streaming] as a whole', async () => {
    const dir = await tempDir('broker-reload');
    const machine = (id: string) =>
      `[[machines]]\nid = "${id}"\nnamespace = "default"\nname = "${id}"\ntarget = { type = "sandbox" }\n`;
    const broker = await startBroker(brokerConfig(dir, machine('m1')), {
      log: silentLogger(),
      sandbox: await sandboxDeps(),
    });
    const runtime = createRuntimeClient(broker.socketPath);
    const ids = async () => (await runtime.listMachines({})).map((m) => m.metadata?.id).sort();
    try {
      await assert.rejects(
        broker.reload(
          brokerConfig(dir, `[streaming]\ntoken_ttl = "5m"\n` + machine('m1') + machine('m2')),
        ),
        /\[streaming\] changed, which takes a restart/,
      );
      assert.deepEqual(await ids(), ['m1'], 'nothing was changed');
      await broker.reload(brokerConfig(dir, machine('m1') + machine('m2')));
      assert.deepEqual(await ids(), ['m1', 'm2']);
    } finally {
      runtime.close();
      await broker.close(100);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
