import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LogOptions {
  /** pino level; `HOSTPLANE_LOG_LEVEL` overrides the default of `info`. */
  level?: LevelWithSilent;
  /** name of the daemon or tool, set as `name` on every record. */
  name: string;
  /** where records go; JSON lines to stdout (journald keeps them) when absent. */
  destination?: DestinationStream;
}

/** A JSON logger to stdout with no transports, as production runs it. */
export function createLogger(opts: LogOptions): Logger {
  const level =
    opts.level ?? (process.env['HOSTPLANE_LOG_LEVEL'] as LevelWithSilent | undefined) ?? 'info';
  return pino(
    {
      name: opts.name,
      level,
      base: { name: opts.name },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger whose records tests can read: every record is parsed and pushed to `records`. */
export function createMemoryLogger(name = 'test'): {
  log: Logger;
  records: Record<string, unknown>[];
} {
  const records: Record<string, unknown>[] = [];
  const destination: DestinationStream = {
    write(line: string) {
      records.push(JSON.parse(line) as Record<string, unknown>);
    },
  };
  return { log: createLogger({ name, level: 'trace', destination }), records };
}

/** A logger that drops everything (for tools that must print nothing but their own output). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
