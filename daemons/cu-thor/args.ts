// Command-line parsing of cu-thor: pure, so usage errors are tested without a server.
import { parseArgs } from 'node:util';
import os from 'node:os';
import path from 'node:path';

export const DEFAULT_SERVER = 'localhost:50051';

/** Exit codes of cu-thor (documented in --help). */
export const EXIT = {
  ok: 0,
  /** the server answered no: not found, invalid argument, too many jobs, ... */
  refused: 1,
  /** the command line is wrong. */
  usage: 2,
  /** the server cannot be reached, or the TLS handshake failed. */
  connection: 3,
  /** the client credentials cannot be read. */
  credentials: 4,
  /** Ctrl-C (SIGINT): the call was cancelled. */
  interrupted: 130,
  /** stdout is a pipe whose reader left (`cu-thor output | head`), as machine-exec. */
  brokenPipe: 141,
} as const;

/** The largest value of a uint32 wire field (--cpu-percent, --pids-max). */
export const MAX_UINT32 = 4294967295;

export const USAGE = `Usage: cu-thor <command> [<args>]

Options:
  --help, -h             display this help and exit
  --server HOST:PORT     the server to talk to (default: $CUTHOR_SERVER, else ${DEFAULT_SERVER})

Commands:
  start                  starts the remote execution of a command on the server
  list                   shows information about the currently available executions
  stop                   stops an execution
  status                 returns the information about a certain execution
  output                 streams the output of a certain execution

Credentials (ca.crt, client.crt, client.key) are read from ~/.cu-thor/creds/, or from the
directory in $CUTHOR_CLIENT_CRED_LOCATION.

Exit codes: 0 ok, 1 the server refused (not found, invalid argument, too many jobs, ...),
2 usage error, 3 server unreachable or TLS handshake failed, 4 credentials unreadable,
130 interrupted (Ctrl-C cancels the call), 141 stdout closed by its reader (\`output | head\`).
`;

const COMMAND_USAGE: Record<CommandName, string> = {
  start: `Usage: cu-thor start [--command COMMAND] [ARGS [ARGS ...]]

Positional arguments:
  ARGS                   these arguments will be supplied to the executed command
                         (put them after -- when they start with a dash)

Options:
  --command COMMAND      the command to be executed on the server
  --cpu-percent N        cpu limit in percent of one cpu (150 = one and a half cpus), 1..4294967295
  --memory-max SIZE      hard memory limit (bytes, or with K/M/G suffix)
  --memory-high SIZE     soft memory limit (bytes, or with K/M/G suffix)
  --pids-max N           maximum number of processes, 1..4294967295
  --json                 print the new execution as JSON instead of its id

Prints the id of the new execution.
`,
  list: `Usage: cu-thor list [--json]

Shows every execution this client (its certificate's CN) started, oldest first. The server
answers in pages (at most 100 executions or 1 MiB each); all of them are fetched.
`,
  stop: `Usage: cu-thor stop --id ID [--json]

Sends SIGTERM to the execution, then SIGKILL after the server's grace period; waits until it
has ended.
`,
  status: `Usage: cu-thor status --id ID [--json]

Shows the metadata of one execution.
`,
  output: `Usage: cu-thor output --id ID

Streams the output of an execution from its first byte until it ends: its stdout to stdout and
its stderr to stderr.
`,
};

export type CommandName = 'start' | 'list' | 'stop' | 'status' | 'output';
const COMMANDS: readonly CommandName[] = ['start', 'list', 'stop', 'status', 'output'];

/** Limits a user asked for on `start`; absent ones take the server's defaults. */
export interface CliLimits {
  cpuPercent?: number;
  memoryMaxBytes?: number;
  memoryHighBytes?: number;
  pidsMax?: number;
}

export type Invocation =
  | { kind: 'help'; text: string }
  | { kind: 'usage-error'; message: string }
  | ({ kind: 'run'; server: string; credDir: string; json: boolean } & (
      | { command: 'start'; program: string; args: string[]; limits: CliLimits }
      | { command: 'list' }
      | { command: 'stop' | 'status' | 'output'; id: string }
    ));

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  server: { type: 'string' },
  json: { type: 'boolean' },
  command: { type: 'string' },
  id: { type: 'string' },
  'cpu-percent': { type: 'string' },
  'memory-max': { type: 'string' },
  'memory-high': { type: 'string' },
  'pids-max': { type: 'string' },
} as const;

/** Options each command accepts, besides --help and --server. */
const ALLOWED: Record<CommandName, readonly string[]> = {
  start: ['command', 'json', 'cpu-percent', 'memory-max', 'memory-high', 'pids-max'],
  list: ['json'],
  stop: ['id', 'json'],
  status: ['id', 'json'],
  output: ['id'],
};

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

/** "512M", "1g", "4096" → bytes; undefined when it is not a size. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (m === null) return undefined;
  const n = Number(m[1]) * (SIZE_UNITS[(m[2] ?? '').toLowerCase()] ?? NaN);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** 1..MAX_UINT32: the wire fields are uint32, a larger value would wrap around. */
function positiveInt(text: string): number | undefined {
  return /^\d+$/.test(text) && Number(text) > 0 && Number(text) <= MAX_UINT32
    ? Number(text)
    : undefined;
}

/** Where the client credentials live: $CUTHOR_CLIENT_CRED_LOCATION, else ~/.cu-thor/creds. */
export function credentialsDir(env: NodeJS.ProcessEnv, home = os.homedir()): string {
  const fromEnv = env['CUTHOR_CLIENT_CRED_LOCATION'];
  return fromEnv !== undefined && fromEnv !== ''
    ? path.resolve(fromEnv)
    : path.join(home, '.cu-thor', 'creds');
}

/** Turns argv (without node and script) and the environment into what to do. */
export function parseCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  home?: string,
): Invocation {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs messages are already one readable line ("Unknown option '-x'...").
    return { kind: 'usage-error', message: (err as Error).message };
  }
  const { values, positionals } = parsed;
  const [name, ...rest] = positionals;
  if (name === undefined) {
    return values.help === true
      ? { kind: 'help', text: USAGE }
      : { kind: 'usage-error', message: 'no command given' };
  }
  if (!COMMANDS.includes(name as CommandName)) {
    return { kind: 'usage-error', message: `unknown command '${name}'` };
  }
  const command = name as CommandName;
  if (values.help === true) return { kind: 'help', text: COMMAND_USAGE[command] };
  for (const key of Object.keys(values)) {
    if (key !== 'help' && key !== 'server' && !ALLOWED[command].includes(key)) {
      return { kind: 'usage-error', message: `${command} does not take --${key}` };
    }
  }
  const serverFromEnv = env['CUTHOR_SERVER'];
  const server =
    values.server ??
    (serverFromEnv !== undefined && serverFromEnv !== '' ? serverFromEnv : DEFAULT_SERVER);
  if (!/^.+:\d+$/.test(server)) {
    return { kind: 'usage-error', message: `server '${server}' is not HOST:PORT` };
  }
  const common = {
    kind: 'run' as const,
    server,
    credDir: credentialsDir(env, home),
    json: values.json === true,
  };

  if (command === 'start') {
    if (values.command === undefined || values.command === '') {
      return { kind: 'usage-error', message: 'start needs --command COMMAND' };
    }
    const limits: CliLimits = {};
    const intRange = `a whole number from 1 to ${MAX_UINT32}`;
    const ints = [
      ['cpu-percent', 'cpuPercent', positiveInt, intRange],
      ['pids-max', 'pidsMax', positiveInt, intRange],
      ['memory-max', 'memoryMaxBytes', parseSize, 'a size'],
      ['memory-high', 'memoryHighBytes', parseSize, 'a size'],
    ] as const;
    for (const [flag, field, parse, what] of ints) {
      const text = values[flag];
      if (text === undefined) continue;
      const n = parse(text);
      if (n === undefined) {
        return { kind: 'usage-error', message: `--${flag} '${text}' is not ${what}` };
      }
      limits[field] = n;
    }
    return { ...common, command, program: values.command, args: rest, limits };
  }
  if (rest.length > 0) {
    return {
      kind: 'usage-error',
      message: `${command} takes no arguments, got '${rest.join(' ')}'`,
    };
  }
  if (command === 'list') return { ...common, command };
  if (values.id === undefined || values.id === '') {
    return { kind: 'usage-error', message: `${command} needs --id ID` };
  }
  return { ...common, command, id: values.id };
}
