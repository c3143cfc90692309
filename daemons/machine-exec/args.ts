// machine-exec's command line: flags, environment and defaults into one Invocation.
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

export const USAGE = `usage: machine-exec [--gateway URL] [--creds DIR] [--tty | --no-tty] NAMESPACE/NAME

Opens a console on a machine through exec-gateway. In a terminal the console is interactive (raw
mode, window size follows; also with stdout a pipe under --tty); press Ctrl+] to leave. With
piped stdin it runs non-interactively:
  echo 'echo hi' | machine-exec default/m1
and exits with the session's exit status.

  --gateway URL   exec-gateway, default $MACHINE_EXEC_GATEWAY or https://localhost:8443; a path
                  in it (a reverse proxy's prefix) comes before /apis/...
  --creds DIR     ca.crt, client.crt, client.key; default $MACHINE_EXEC_CREDS or ~/.machine-exec/creds
  --tty/--no-tty  force a terminal session or a plain one (default: a terminal when stdin and
                  stdout are terminals)

Exit status: the remote command's; 1 when the session failed or was refused (or reported a code
outside 0-255); 2 on usage errors; 141 when stdout is a pipe whose reader left; 128+n on SIGHUP
and SIGQUIT.`;

export const DEFAULT_GATEWAY = 'https://localhost:8443';

export type Invocation =
  | { kind: 'help' }
  | { kind: 'usage-error'; message: string }
  | {
      kind: 'exec';
      gateway: URL;
      creds: string;
      namespace: string;
      name: string;
      /** undefined: decide from the terminals */
      tty: boolean | undefined;
    };

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Parses argv (without node and the script) with `env` for defaults. */
export function parseCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  home = os.homedir(),
): Invocation {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        gateway: { type: 'string' },
        creds: { type: 'string' },
        tty: { type: 'boolean', short: 't' },
        'no-tty': { type: 'boolean', short: 'T' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    return { kind: 'usage-error', message: (err as Error).message };
  }
  const { values, positionals } = parsed;
  if (values.help === true) return { kind: 'help' };
  if (positionals.length !== 1) {
    return { kind: 'usage-error', message: 'expected exactly one NAMESPACE/NAME' };
  }
  const m = /^([^/]+)\/([^/]+)$/.exec(positionals[0]!);
  if (m === null || !NAME.test(m[1]!) || !NAME.test(m[2]!)) {
    return {
      kind: 'usage-error',
      message: `${JSON.stringify(positionals[0])} is not NAMESPACE/NAME`,
    };
  }
  if (values.tty === true && values['no-tty'] === true) {
    return { kind: 'usage-error', message: '--tty and --no-tty contradict each other' };
  }
  const gatewayText = values.gateway ?? nonEmpty(env['MACHINE_EXEC_GATEWAY']) ?? DEFAULT_GATEWAY;
  let gateway: URL;
  try {
    gateway = new URL(gatewayText);
  } catch {
    return { kind: 'usage-error', message: `gateway ${JSON.stringify(gatewayText)} is not a URL` };
  }
  if (gateway.protocol !== 'https:') {
    return { kind: 'usage-error', message: `gateway ${gatewayText} is not an https: URL` };
  }
  if (
    gateway.search !== '' ||
    gateway.hash !== '' ||
    gateway.username !== '' ||
    gateway.password !== ''
  ) {
    return {
      kind: 'usage-error',
      message: `gateway ${gatewayText} has a query, fragment or user name; only a path prefix may follow the host`,
    };
  }
  const creds = path.resolve(
    values.creds ??
      nonEmpty(env['MACHINE_EXEC_CREDS']) ??
      path.join(home, '.machine-exec', 'creds'),
  );
  const tty = values.tty === true ? true : values['no-tty'] === true ? false : undefined;
  return { kind: 'exec', gateway, creds, namespace: m[1]!, name: m[2]!, tty };
}

/** The exec URL of a machine: the gateway URL's path (a reverse proxy's prefix) with the exec path after it. */
export function execUrl(gateway: URL, namespace: string, name: string, tty: boolean): URL {
  const base = new URL(gateway);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return new URL(
    `apis/compute.ironcore.dev/namespaces/${namespace}/machines/${name}/exec?tty=${tty}`,
    base,
  );
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}
