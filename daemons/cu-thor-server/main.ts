// cu-thor-server: the remote job executor daemon. See etc/hostplane/cu-thor-server.toml.
import { existsSync } from 'node:fs';
import { runDaemon } from '../../shared/daemon/index.ts';
import { createRunner, findBinary } from '../../shared/exec/index.ts';
import { nsInitPath } from '../../shared/ns/index.ts';
import { configSchema, DEFAULT_CONFIG_PATH, drainTimeoutMs } from './config.ts';
import { run } from './server.ts';

const USAGE = `Usage: cu-thor-server [--config PATH] [--check-config]

Runs commands for mTLS-authenticated gRPC clients (cu-thor), each in its own cgroup and PID,
mount and network namespaces.

Options:
  --config PATH      configuration file (default ${DEFAULT_CONFIG_PATH})
  --check-config     validate the configuration and exit (78 when invalid)
  --help, -h         show this help
  --version          show the version

Signals: SIGHUP re-reads the TLS certificate files; SIGTERM stops accepting calls, ends output
streams and stops running jobs (SIGTERM, then SIGKILL after stop_grace) before exiting.
`;

process.exit(
  await runDaemon({
    name: 'cu-thor-server',
    schema: configSchema,
    defaultConfigPath: DEFAULT_CONFIG_PATH,
    usage: USAGE,
    // stop_grace plus a margin (see drainTimeoutMs); the unit's TimeoutStopSec must be above it
    drainTimeoutMs,
    async run(ctx) {
      const unshare = await findBinary('unshare');
      const nsinit = nsInitPath();
      if (!existsSync(nsinit)) {
        throw new Error(
          `starting jobs needs hostplane-nsinit: ${nsinit} does not exist (in a checkout: npm run quickstart builds it)`,
        );
      }
      const runner = createRunner({ log: ctx.log, allow: [unshare, nsinit] });
      await run(
        {
          config: ctx.config,
          log: ctx.log,
          runner,
          nsinit,
          unshare,
          ready: (status) => {
            ctx.ready(status);
          },
          onReload: (fn) => {
            ctx.onReload(fn);
          },
        },
        ctx.signal,
      );
    },
  }),
);
