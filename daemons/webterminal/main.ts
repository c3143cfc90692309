// webterminal: shells and machine consoles in the browser (see docs/webterminal.md).
import { readFile } from 'node:fs/promises';
import { findBinary } from '../../shared/exec/index.ts';
import { runDaemon, untilAborted } from '../../shared/daemon/index.ts';
import { nsInitPath } from '../../shared/ns/index.ts';
import { SessionCgroups } from './cgroups.ts';
import { configSchema, type WebterminalConfig } from './config.ts';
import { startWebterminal, type TlsMaterial } from './server.ts';
import { targetStarter } from './targets.ts';

const usage = `usage: webterminal [--config FILE] [--check-config]

Serves the web terminal UI and API over HTTPS. Default config: /etc/hostplane/webterminal.toml
SIGHUP re-reads the config (targets, tokens, sessions, CSP, TLS files); live sessions go on.`;

const read = async (what: string, file: string): Promise<Buffer> => {
  try {
    return await readFile(file);
  } catch (cause) {
    throw new Error(`reading ${what} ${file}: ${(cause as NodeJS.ErrnoException).code}`, { cause });
  }
};

/** The TLS files of `c`, read now (at start and at every reload). */
const readTls = async (c: WebterminalConfig): Promise<TlsMaterial | undefined> =>
  c.tls === undefined
    ? undefined
    : {
        cert: await read('tls cert_file', c.tls.cert_file),
        key: await read('tls key_file', c.tls.key_file),
        ...(c.auth.client_ca_file === undefined
          ? {}
          : { clientCa: await read('auth client_ca_file', c.auth.client_ca_file) }),
      };

process.exit(
  await runDaemon<WebterminalConfig>({
    name: 'webterminal',
    schema: configSchema,
    defaultConfigPath: '/etc/hostplane/webterminal.toml',
    usage,
    async run(ctx) {
      const c = ctx.config;
      const [unshare, setsid, setpriv] = await Promise.all([
        c.sandbox.unshare ?? findBinary('unshare'),
        findBinary('setsid'),
        findBinary('setpriv'),
      ]);
      const tls = await readTls(c);
      const { cgroups, problem } = await SessionCgroups.setup({
        mode: c.cgroup.require ? 'required' : 'optional',
        log: ctx.log,
      });
      const start = targetStarter(
        {
          unshare,
          setsid,
          setpriv,
          nsinit: c.sandbox.nsinit ?? nsInitPath(),
          term: c.sandbox.term,
          ...(cgroups === null
            ? {}
            : { cgroups: { sessions: cgroups, defaults: () => ctx.config.sandbox.limits } }),
        },
        ctx.log,
        // getters: a session certificate lives for the ttl of the config in effect (reload)
        {
          get ttlMs() {
            return ctx.config.sessions.ttl;
          },
          get timeoutMs() {
            return ctx.config.sessions.ready_timeout;
          },
        },
      );
      const wt = await startWebterminal(c, {
        log: ctx.log,
        clock: Date.now,
        start,
        ...(tls === undefined ? {} : { tls }),
      });
      // runDaemon makes ctx.config the new config once every handler accepted it
      ctx.onReload(async (next) => {
        wt.reload(next, await readTls(next));
      });
      const isolation =
        cgroups === null
          ? `namespaces only, NO resource limits (cgroup v2 not usable: ${problem ?? 'unknown'})`
          : 'a cgroup and namespaces per session';
      ctx.ready(`listening on ${wt.origin}; sandboxes: ${isolation}`);
      await untilAborted(ctx.signal);
      await wt.close();
    },
  }),
);
