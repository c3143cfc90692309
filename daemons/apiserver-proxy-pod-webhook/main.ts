// apiserver-proxy-pod-webhook: a mutating admission webhook that points pods at the API server's
// FQDN. See etc/hostplane/apiserver-proxy-pod-webhook.toml.
import { runDaemon } from '../../shared/daemon/index.ts';
import { DEFAULT_CONFIG_PATH, webhookSchema } from './config.ts';
import { runWebhook } from './run.ts';

const USAGE = `Usage: apiserver-proxy-pod-webhook [--config PATH] [--check-config]

Serves POST /webhook/pod-apiserver-env over HTTPS: adds KUBERNETES_SERVICE_HOST=<apiserver_fqdn>
to every container and initContainer of a Pod that lacks it, as a JSON Patch.

Options:
  --config PATH      configuration file (default ${DEFAULT_CONFIG_PATH})
  --check-config     validate the configuration and exit (78 when invalid)
  --help, -h         show this help
  --version          show the version

Certificates are re-read when their files change and on SIGHUP, without a restart.
`;

process.exit(
  await runDaemon({
    name: 'apiserver-proxy-pod-webhook',
    schema: webhookSchema,
    defaultConfigPath: DEFAULT_CONFIG_PATH,
    usage: USAGE,
    run: (ctx) =>
      runWebhook({
        config: ctx.config,
        log: ctx.log,
        signal: ctx.signal,
        ready: (status) => {
          ctx.ready(status);
        },
        onReload: (fn) => {
          ctx.onReload(fn);
        },
      }),
  }),
);
