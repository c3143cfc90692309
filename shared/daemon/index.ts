// The lifecycle every hostplane daemon shares: flags, config, READY, SIGHUP reload, graceful drain
// with a bound on SIGTERM/SIGINT. `main.ts` is `process.exit(await runDaemon(spec))`; runDaemon
// itself never exits the process.
import { parseArgs } from 'node:util';
import type { EventEmitter } from 'node:events';
import type { z } from 'zod';
import { ConfigError, loadConfig } from '../config/index.ts';
import { createLogger, type Logger } from '../log/index.ts';
import { createNotifier, type Notifier } from '../systemd/index.ts';
import pkg from '../../package.json' with { type: 'json' };

/** Exit codes of runDaemon (sysexits.h where one fits). */
export const EXIT = Object.freeze({
  OK: 0,
  FAILURE: 1,
  USAGE: 64,
  CONFIG: 78,
});

export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

/** A flag a daemon accepts besides --config/--check-config/--help/--version. */
export interface DaemonFlag {
  type: 'boolean' | 'string';
  short?: string;
}

/** What a daemon declares; runDaemon does the rest. */
export interface DaemonSpec<C> {
  /** 'cu-thor-server': the logger name and the prefix of messages to the operator */
  name: string;
  schema: z.ZodType<C>;
  /** '/etc/hostplane/cu-thor-server.toml' */
  defaultConfigPath: string;
  /** --help text */
  usage: string;
  /** printed by --version; default the workspace version */
  version?: string;
  /** bound on the graceful stop after SIGTERM, or a function of the config; default 10 s */
  drainTimeoutMs?: number | ((config: C) => number);
  /** extra flags (e.g. `{ cleanup: { type: 'boolean' } }` for `--cleanup`), read from ctx.flags */
  flags?: Readonly<Record<string, DaemonFlag>>;
  /** whether positional arguments are allowed (they land in ctx.argv); default false */
  positionals?: boolean;
  /** Runs the daemon; resolves once fully stopped after ctx.signal aborted (or when its work is done). */
  run(ctx: DaemonContext<C>): Promise<void>;
}

/** What a running daemon gets from runDaemon. */
export interface DaemonContext<C> {
  /** the current config; replaced after a successful reload */
  readonly config: C;
  readonly configPath: string;
  readonly log: Logger;
  readonly notify: Notifier;
  /** aborts on SIGTERM/SIGINT: stop accepting work, drain, then resolve run() */
  readonly signal: AbortSignal;
  /** READY=1 (+STATUS=): call after listeners are bound and the first sync is done */
  ready(status?: string): void;
  /** SIGHUP: called with the new, valid config; a throw keeps the old config and is logged */
  onReload(fn: (next: C) => Promise<void>): void;
  /** values of spec.flags, by name */
  readonly flags: Readonly<Record<string, string | boolean | undefined>>;
  /** the arguments runDaemon did not consume: daemon flags as given, then positionals */
  readonly argv: readonly string[];
}

/** What runDaemon uses from the outside world; tests pass their own. */
export interface DaemonDeps {
  /** where signals come from; default `process` */
  signals?: Pick<EventEmitter, 'on' | 'off'>;
  log?: Logger;
  notify?: Notifier;
  stdout?: { write(s: string): unknown };
  stderr?: { write(s: string): unknown };
  env?: Readonly<Record<string, string | undefined>>;
}

const COMMON_FLAGS = {
  config: { type: 'string' },
  'check-config': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

/** Runs a daemon from argv to exit code (see the module comment). */
export async function runDaemon<C>(
  spec: DaemonSpec<C>,
  argv: readonly string[] = process.argv.slice(2),
  deps: DaemonDeps = {},
): Promise<number> {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;
  const env = deps.env ?? process.env;
  const debug = env['HOSTPLANE_DEBUG'] !== undefined && env['HOSTPLANE_DEBUG'] !== '';
  const operator = (msg: string): void => {
    stderr.write(`${spec.name}: ${msg}\n`);
  };

  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...(spec.flags ?? {}), ...COMMON_FLAGS },
      allowPositionals: spec.positionals ?? false,
      strict: true,
      tokens: true,
    });
  } catch (err) {
    operator(`${errorText(err)}\n\n${spec.usage.trimEnd()}`);
    return EXIT.USAGE;
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values['help'] === true) {
    stdout.write(`${spec.usage.trimEnd()}\n`);
    return EXIT.OK;
  }
  if (values['version'] === true) {
    stdout.write(`${spec.name} ${spec.version ?? pkg.version}\n`);
    return EXIT.OK;
  }
  const configPath =
    typeof values['config'] === 'string' ? values['config'] : spec.defaultConfigPath;

  let config: C;
  try {
    config = await loadConfig(configPath, spec.schema);
  } catch (err) {
    stderr.write(`${errorText(err)}\n`);
    return err instanceof ConfigError ? EXIT.CONFIG : EXIT.FAILURE;
  }
  if (values['check-config'] === true) {
    stdout.write(`ok: ${configPath}\n`);
    return EXIT.OK;
  }

  const log = (deps.log ?? createLogger({ name: spec.name })).child({});
  const notify = deps.notify ?? createNotifier({ log, env });
  const signals = deps.signals ?? process;
  const drainTimeoutMs =
    typeof spec.drainTimeoutMs === 'function'
      ? spec.drainTimeoutMs(config)
      : (spec.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS);
  const controller = new AbortController();
  const reloadHandlers: ((next: C) => Promise<void>)[] = [];
  const flags: Record<string, string | boolean | undefined> = {};
  for (const name of Object.keys(spec.flags ?? {})) flags[name] = values[name];
  const rest = restArgs(parsed.tokens ?? []);

  // mutated from callbacks; an object so that control-flow narrowing doesn't pin them
  const state = { ready: false, reloadsPending: 0 };
  const ctx: DaemonContext<C> = {
    get config() {
      return config;
    },
    configPath,
    log,
    notify,
    signal: controller.signal,
    ready(status) {
      state.ready = true;
      notify.ready(status);
      log.info({ configPath, status }, 'ready');
    },
    onReload(fn) {
      reloadHandlers.push(fn);
    },
    flags: Object.freeze(flags),
    argv: rest,
  };

  // SIGHUP: one reload at a time; a SIGHUP during a reload queues exactly one more
  let reloading: Promise<void> | undefined;
  const reload = async (): Promise<void> => {
    notify.reloading();
    log.info({ configPath }, 'reloading configuration');
    try {
      const next = await loadConfig(configPath, spec.schema);
      for (const fn of reloadHandlers) await fn(next);
      config = next;
      log.info({ configPath }, 'configuration reloaded');
    } catch (err) {
      const reason = errorText(err);
      log.error(
        { configPath, reason, ...(debug ? { err } : {}) },
        `reload failed, keeping the old configuration: ${reason}`,
      );
    }
    // READY=1 even after a failed reload: the daemon runs on, with the old config
    notify.ready();
  };
  const onHup = (): void => {
    if (controller.signal.aborted) return;
    if (reloading !== undefined) {
      state.reloadsPending = 1;
      return;
    }
    const loop = async (): Promise<void> => {
      state.reloadsPending = 1;
      while (state.reloadsPending > 0 && !controller.signal.aborted) {
        state.reloadsPending = 0;
        await reload();
      }
      reloading = undefined;
    };
    reloading = loop();
  };

  let forced: (() => void) | undefined;
  const forcedStop = new Promise<'forced'>((resolve) => {
    forced = () => {
      resolve('forced');
    };
  });
  let stopSignal: string | undefined;
  const onStop = (sig: string): void => {
    if (controller.signal.aborted) {
      log.warn({ signal: sig }, 'second stop signal: stopping now without finishing the drain');
      forced?.();
      return;
    }
    stopSignal = sig;
    log.info({ signal: sig, drainTimeoutMs }, 'stopping');
    notify.stopping();
    controller.abort(new Error(`stopping on ${sig}`));
  };
  const onTerm = (): void => {
    onStop('SIGTERM');
  };
  const onInt = (): void => {
    onStop('SIGINT');
  };
  signals.on('SIGTERM', onTerm);
  signals.on('SIGINT', onInt);
  signals.on('SIGHUP', onHup);
  notify.startWatchdog();

  let drainTimer: NodeJS.Timeout | undefined;
  const drainBound = new Promise<'timeout'>((resolve) => {
    controller.signal.addEventListener(
      'abort',
      () => {
        drainTimer = setTimeout(() => {
          resolve('timeout');
        }, drainTimeoutMs);
      },
      { once: true },
    );
  });

  try {
    // async wrapper: a synchronous throw in run() becomes a rejection like any other
    const running = (async () => {
      await spec.run(ctx);
    })();
    const outcome = await Promise.race([
      running.then(
        () => ({ kind: 'done' as const }),
        (err: unknown) => ({ kind: 'failed' as const, err }),
      ),
      drainBound.then((kind) => ({ kind })),
      forcedStop.then((kind) => ({ kind })),
    ]);
    if (outcome.kind === 'done') {
      if (stopSignal !== undefined) log.info({ signal: stopSignal }, 'stopped');
      return EXIT.OK;
    }
    switch (outcome.kind) {
      case 'failed': {
        const reason = errorText(outcome.err);
        log.error({ reason, ready: state.ready, ...(debug ? { err: outcome.err } : {}) }, 'failed');
        if (!state.ready) operator(reason);
        if (debug && outcome.err instanceof Error && outcome.err.stack !== undefined) {
          stderr.write(`${outcome.err.stack}\n`);
        }
        return EXIT.FAILURE;
      }
      case 'timeout':
        log.error(
          { drainTimeoutMs },
          `drain did not finish within ${drainTimeoutMs} ms, stopping anyway`,
        );
        return EXIT.FAILURE;
      case 'forced':
        return EXIT.FAILURE;
    }
    return EXIT.FAILURE;
  } finally {
    if (drainTimer !== undefined) clearTimeout(drainTimer);
    signals.off('SIGTERM', onTerm);
    signals.off('SIGINT', onInt);
    signals.off('SIGHUP', onHup);
    notify.stop();
    if (reloading !== undefined) await reloading.catch(() => undefined);
    // main.ts exits right after: get the buffered log lines out first
    await new Promise<void>((resolve) => {
      log.flush(() => {
        resolve();
      });
    });
  }
}

/** The arguments parseArgs saw that are not runDaemon's own flags, in their original form. */
function restArgs(tokens: ReturnType<typeof parseArgs>['tokens'] & {}): string[] {
  const out: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') out.push(t.value);
    else if (t.kind === 'option' && !(t.name in COMMON_FLAGS)) {
      out.push(t.rawName);
      if (t.value !== undefined) out.push(t.value);
    }
  }
  return out;
}

/** A one-line operator message from anything thrown. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Resolves once `signal` has aborted (at once if it already has): a daemon's "serve until told to stop". */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    signal.addEventListener(
      'abort',
      () => {
        resolve();
      },
      { once: true },
    );
  });
}
