// machinebroker: the machine runtime of the exec chain (see docs/machine-exec.md).
import { createRunner, findBinary } from '../../shared/exec/index.ts';
import { runDaemon, untilAborted } from '../../shared/daemon/index.ts';
import { nsInitPath } from '../../shared/ns/index.ts';
import { startBroker } from './broker.ts';
import { configSchema, type BrokerConfig } from './config.ts';

const usage = `usage: machinebroker [--config FILE] [--check-config]

Serves the machine runtime API (Exec, ListMachines) on a unix socket and the one-time exec
session URLs on loopback. Default config: /etc/hostplane/machinebroker.toml`;

process.exit(
  await runDaemon<BrokerConfig>({
    name: 'machinebroker',
    schema: configSchema,
    defaultConfigPath: '/etc/hostplane/machinebroker.toml',
    usage,
    async run(ctx) {
      const unshare = ctx.config.sandbox.unshare ?? (await findBinary('unshare'));
      const nsinit = ctx.config.sandbox.nsinit ?? nsInitPath();
      const setsid = await findBinary('setsid');
      const runner = createRunner({ log: ctx.log, allow: [unshare] });
      const broker = await startBroker(ctx.config, {
        log: ctx.log,
        sandbox: { runner, unshare, nsinit, setsid, term: ctx.config.sandbox.term },
      });
      ctx.onReload((next) => broker.reload(next));
      ctx.ready(`serving ${ctx.config.machines.length} machines`);
      await untilAborted(ctx.signal);
      await broker.close();
    },
  }),
);
