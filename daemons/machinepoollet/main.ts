// machinepoollet: the machine pool's exec endpoint in front of its runtime (see docs/machine-exec.md).
import { runDaemon, untilAborted } from '../../shared/daemon/index.ts';
import { configSchema, type PoolletConfig } from './config.ts';
import { startPoollet } from './server.ts';

const usage = `usage: machinepoollet [--config FILE] [--check-config]

Serves /apis/compute.ironcore.dev/namespaces/NS/machines/NAME/exec over mutual TLS, asks the
machine runtime for a session and proxies to it. Default config: /etc/hostplane/machinepoollet.toml`;

process.exit(
  await runDaemon<PoolletConfig>({
    name: 'machinepoollet',
    schema: configSchema,
    defaultConfigPath: '/etc/hostplane/machinepoollet.toml',
    usage,
    async run(ctx) {
      const poollet = await startPoollet(ctx.config, { log: ctx.log });
      ctx.onReload((next) => poollet.reload(next));
      ctx.ready(`listening on port ${poollet.port}`);
      await untilAborted(ctx.signal);
      await poollet.close();
    },
  }),
);
