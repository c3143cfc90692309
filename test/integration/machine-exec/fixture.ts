// A whole exec chain on 127.0.0.1 (broker with sandbox machines, poollet, gateway) for the CLI
// tests and the bench, plus a credentials directory for machine-exec.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { parseConfig } from '../../../shared/config/index.ts';
import { silentLogger } from '../../../shared/log/index.ts';
import { startBroker, type Broker } from '../../../daemons/machinebroker/broker.ts';
import { configSchema as poolletSchema } from '../../../daemons/machinepoollet/config.ts';
import { startPoollet, type Poollet } from '../../../daemons/machinepoollet/server.ts';
import { configSchema as gatewaySchema } from '../../../daemons/exec-gateway/config.ts';
import { startGateway, type Gateway } from '../../../daemons/exec-gateway/server.ts';
import { brokerConfig, sandboxDeps, tempDir } from './helpers.ts';
import { createTestCa, type TestCa } from './pki.ts';

export interface Chain {
  dir: string;
  ca: TestCa;
  broker: Broker;
  poollet: Poollet;
  gateway: Gateway;
  /** https://127.0.0.1:PORT of the gateway */
  gatewayUrl: string;
  /** TLS options of user alice (allowed everywhere) */
  alice: ConnectionOptions;
  /** a directory with ca.crt, client.crt, client.key of alice */
  credsDir: string;
  close(): Promise<void>;
}

/** `machines` is the `[[machines]]` TOML of the broker; each becomes default/<name> in pool-a. */
export async function startChain(
  machines: readonly { name: string; target: string }[],
  brokerExtra = '',
): Promise<Chain> {
  const dir = await tempDir('chain');
  const ca = await createTestCa();
  const files = async (
    name: string,
    cn: string,
    opts?: Parameters<TestCa['issue']>[1],
  ): Promise<string> => {
    const f = await ca.write(dir, name, await ca.issue(cn, opts));
    return `ca_file = ${JSON.stringify(f.ca_file)}\ncert_file = ${JSON.stringify(f.cert_file)}\nkey_file = ${JSON.stringify(f.key_file)}\n`;
  };
  const broker = await startBroker(
    brokerConfig(
      dir,
      brokerExtra +
        machines
          .map(
            (m) =>
              `[[machines]]\nid = "${m.name}"\nnamespace = "default"\nname = "${m.name}"\ntarget = ${m.target}\n`,
          )
          .join(''),
    ),
    { log: silentLogger(), sandbox: await sandboxDeps() },
  );
  const poollet = await startPoollet(
    parseConfig(
      `listen = "127.0.0.1:0"\n[tls]\n${await files('poollet', 'poollet', { server: ['127.0.0.1'] })}` +
        `[runtime]\nsocket = ${JSON.stringify(broker.socketPath)}\n[[policy]]\nusers = ["alice"]\n`,
      'poollet.toml',
      poolletSchema,
    ),
    { log: silentLogger() },
  );
  const gateway = await startGateway(
    parseConfig(
      `listen = "127.0.0.1:0"\n[tls]\n${await files('gw', 'gateway', { server: ['127.0.0.1'] })}` +
        `[upstream_tls]\n${await files('gw-client', 'exec-gateway')}` +
        `[[policy]]\nusers = ["alice"]\n` +
        `[[pools]]\nname = "pool-a"\nport = ${poollet.port}\naddresses = [{ type = "InternalIP", address = "127.0.0.1" }]\n` +
        machines
          .map((m) => `[[machines]]\nnamespace = "default"\nname = "${m.name}"\npool = "pool-a"\n`)
          .join(''),
      'gateway.toml',
      gatewaySchema,
    ),
    { log: silentLogger() },
  );
  const leaf = await ca.issue('alice');
  const credsDir = path.join(dir, 'creds');
  await mkdir(credsDir);
  await writeFile(path.join(credsDir, 'ca.crt'), ca.cert);
  await writeFile(path.join(credsDir, 'client.crt'), leaf.cert);
  await writeFile(path.join(credsDir, 'client.key'), leaf.key, { mode: 0o600 });
  return {
    dir,
    ca,
    broker,
    poollet,
    gateway,
    gatewayUrl: `https://127.0.0.1:${gateway.port}`,
    alice: { ca: ca.cert, cert: leaf.cert, key: leaf.key },
    credsDir,
    async close() {
      await gateway.close(100);
      await poollet.close(100);
      await broker.close(100);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
