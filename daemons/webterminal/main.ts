// webterminal: shells and machine consoles in the browser (see docs/webterminal.md).
import { readFile } from 'node:fs/promises';
import { findBinary } from '../../shared/exec/index.ts';
import { runDaemon, untilAborted } from '../../shared/daemon/index.ts';
import { nsInitPath } from '../../shared/ns/index.ts';
import { configSchema, type WebterminalConfig } from './config.ts';
import { startWebterminal } from './server.ts';
import { targetStarter } from './targets.ts';

const usage = `usage: webterminal [--config FILE] [--check-config]

Serves the web terminal UI and API over HTTPS. Default config: /etc/hostplane/webterminal.toml`;

const read = async (what: string, file: string): Promise<Buffer> => {
  try {
    return await readFile(file);
  } catch (cause) {
    throw new Error(`reading ${what} ${file}: ${(cause as NodeJS.ErrnoException).code}`, { cause });
  }
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
      const tls =
        c.tls === undefined
          ? undefined
          : {
              cert: await read('tls cert_file', c.tls.cert_file),
              key: await read('tls key_file', c.tls.key_file),
              ...(c.auth.client_ca_file === undefined
                ? {}
                : { clientCa: await read('auth client_ca_file', c.auth.client_ca_file) }),
            };
      const start = targetStarter(
        {
          unshare,
          setsid,
          setpriv,
          nsinit: c.sandbox.nsinit ?? nsInitPath(),
          term: c.sandbox.term,
        },
        ctx.log,
        { ttlMs: c.sessions.ttl, timeoutMs: c.sessions.ready_timeout },
      );
      const wt = await startWebterminal(c, {
        log: ctx.log,
        clock: Date.now,
        start,
        ...(tls === undefined ? {} : { tls }),
      });
      ctx.ready(`listening on ${wt.origin}`);
      await untilAborted(ctx.signal);
      await wt.close();
    },
  }),
);
