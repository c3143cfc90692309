// apiserver-proxy-sidecar: keeps the API-server proxy's addresses (and optionally its NOTRACK and
// ACCEPT rules) on this host. See etc/hostplane/apiserver-proxy-sidecar.toml.
import { runDaemon } from '../../shared/daemon/index.ts';
import { createRunner, findBinary } from '../../shared/exec/index.ts';
import { DEFAULT_NET_TOOLS, findNetTools, netToolList } from '../../shared/net/index.ts';
import { DEFAULT_CONFIG_PATH, sidecarSchema } from './config.ts';
import { runSidecar } from './run.ts';

const USAGE = `Usage: apiserver-proxy-sidecar [--config PATH] [--check-config] [--cleanup | --stop-post]

Puts ip_address and kubernetes_service_ip_address on an interface (a dummy link it creates when
the interface does not exist) and, with setup_iptables, the NOTRACK and ACCEPT rules for the
proxy port; repairs drift every sync_interval and as soon as an address disappears.

Options:
  --config PATH      configuration file (default ${DEFAULT_CONFIG_PATH})
  --check-config     validate the configuration and exit (78 when invalid)
  --cleanup          remove what an earlier run added (link, addresses, chains), then exit
  --stop-post        the unit's ExecStopPost=: --cleanup when the config says cleanup = true,
                     else nothing (covers a daemon that died without cleaning up)
  --help, -h         show this help
  --version          show the version

With daemon = false it syncs once and exits (0, or 1 with the reason). With cleanup = true,
SIGTERM removes what it added before exiting.
`;

process.exit(
  await runDaemon({
    name: 'apiserver-proxy-sidecar',
    schema: sidecarSchema,
    defaultConfigPath: DEFAULT_CONFIG_PATH,
    usage: USAGE,
    flags: { cleanup: { type: 'boolean' }, 'stop-post': { type: 'boolean' } },
    // cleanup on stop is a handful of ip/iptables calls
    drainTimeoutMs: 20_000,
    async run(ctx) {
      const stopPost = ctx.flags['stop-post'] === true;
      if (stopPost && !ctx.config.cleanup) {
        ctx.log.info('cleanup = false: leaving addresses and rules in place');
        return;
      }
      const cleanupOnly = stopPost || ctx.flags['cleanup'] === true;
      // iptables need not even be installed when rules are off (it is used then only to remove
      // chains an earlier config asked for)
      const tools = ctx.config.setup_iptables
        ? await findNetTools()
        : await findNetTools().catch(async () => ({
            ...DEFAULT_NET_TOOLS,
            ip: await findBinary('ip'),
          }));
      const runner = createRunner({ log: ctx.log, allow: netToolList(tools) });
      await runSidecar({
        config: ctx.config,
        log: ctx.log,
        runner,
        tools,
        signal: ctx.signal,
        cleanupOnly,
        ready: (status) => {
          ctx.ready(status);
        },
        status: (text) => {
          ctx.notify.status(text);
        },
      });
    },
  }),
);
