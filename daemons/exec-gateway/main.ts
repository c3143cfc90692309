// exec-gateway: the users' entry to machine exec (see docs/machine-exec.md).
import { runDaemon, untilAborted } from '../../shared/daemon/index.ts';
import { configSchema, type GatewayConfig } from './config.ts';
import { startGateway } from './server.ts';

const usage = `usage: exec-gateway [--config FILE] [--check-config]

Serves /apis/compute.ironcore.dev/namespaces/NS/machines/NAME/exec to users over mutual TLS and
proxies each session to the machinepoollet of the machine's pool.
Default config: /etc/hostplane/exec-gateway.toml`;

process.exit(
  await runDaemon<GatewayConfig>({
    name: 'exec-gateway',
    schema: configSchema,
    defaultConfigPath: '/etc/hostplane/exec-gateway.toml',
    usage,
    async run(ctx) {
      const gateway = await startGateway(ctx.config, { log: ctx.log });
      ctx.onReload((next) => gateway.reload(next));
      ctx.ready(`listening on port ${gateway.port}`);
      await untilAborted(ctx.signal);
      await gateway.close();
    },
  }),
);
