// What cu-thor does once its command line is parsed; every outcome is an exit code and at most
// one line on stderr (no stack traces).
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { EXIT, parseCli, type Invocation } from './args.ts';
import {
  channelCredentials,
  createJobClient,
  CredentialsError,
  readCredentials,
  type JobClient,
} from './client.ts';
import { listText, statusText, toJson } from './format.ts';

export interface CliDeps {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** builds the client; tests may point it elsewhere. */
  connect?: (server: string, credDir: string) => Promise<JobClient>;
  /** aborted on Ctrl-C: the call in flight (any command) is cancelled and cu-thor exits 130. */
  signal?: AbortSignal;
  home?: string;
}

async function defaultConnect(server: string, credDir: string): Promise<JobClient> {
  return createJobClient(server, channelCredentials(await readCredentials(credDir)));
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number';
}

/** "NOT_FOUND" → "not found". */
function codeName(code: grpc.status): string {
  // an unknown number has no name in the enum
  return ((grpc.status[code] as string | undefined) ?? `code ${code}`)
    .toLowerCase()
    .replaceAll('_', ' ');
}

/** Maps a failure to an exit code and one line. */
export function describeError(err: unknown, server: string): { code: number; line: string } {
  if (err instanceof CredentialsError) return { code: EXIT.credentials, line: err.message };
  if (isServiceError(err)) {
    if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) {
      return { code: EXIT.connection, line: `cannot reach server ${server}: ${err.details}` };
    }
    return { code: EXIT.refused, line: `${codeName(err.code)}: ${err.details}` };
  }
  return { code: EXIT.refused, line: err instanceof Error ? err.message : String(err) };
}

/** A write to a pipe whose reader left (`cu-thor list | head -1`). */
function isBrokenPipe(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'EPIPE';
}

async function write(out: NodeJS.WritableStream, data: string | Buffer): Promise<void> {
  if (!out.write(data)) await once(out, 'drain');
}

async function streamOutput(client: JobClient, id: string, deps: CliDeps): Promise<number> {
  const cancel = new AbortController();
  const onAbort = (): void => {
    cancel.abort();
  };
  deps.signal?.addEventListener('abort', onAbort, { once: true });
  // a closed stdout (`cu-thor output | head`) ends the stream quietly, exit 141 (as machine-exec).
  const state = { pipeClosed: false };
  const onPipeError = (): void => {
    state.pipeClosed = true;
    cancel.abort();
  };
  deps.stdout.on('error', onPipeError);
  try {
    for await (const chunk of client.output(id, cancel.signal)) {
      if (chunk.data !== undefined && chunk.data !== null) {
        const target = chunk.data.stream === 'STREAM_STDERR' ? deps.stderr : deps.stdout;
        await write(target, chunk.data.data);
      } else if (chunk.truncated !== undefined && chunk.truncated !== null) {
        await write(deps.stderr, 'cu-thor: output truncated: the server keeps no more of it\n');
      }
    }
    return state.pipeClosed ? EXIT.brokenPipe : EXIT.ok;
  } catch (err) {
    if (state.pipeClosed || isBrokenPipe(err)) return EXIT.brokenPipe;
    if (isServiceError(err) && err.code === grpc.status.CANCELLED) return EXIT.interrupted;
    throw err;
  } finally {
    deps.signal?.removeEventListener('abort', onAbort);
    deps.stdout.off('error', onPipeError);
  }
}

async function execute(
  inv: Extract<Invocation, { kind: 'run' }>,
  client: JobClient,
  deps: CliDeps,
): Promise<number> {
  const json = (v: unknown): Promise<void> => write(deps.stdout, JSON.stringify(v, null, 2) + '\n');
  const signal = deps.signal;
  switch (inv.command) {
    case 'start': {
      const e = await client.execute(
        { command: inv.program, args: inv.args, limits: inv.limits },
        signal,
      );
      if (inv.json) await json(toJson(e));
      else await write(deps.stdout, `${e.id}\n`);
      return EXIT.ok;
    }
    case 'list': {
      const list = await client.list(signal);
      if (inv.json) await json(list.map(toJson));
      else await write(deps.stdout, listText(list));
      return EXIT.ok;
    }
    case 'status':
    case 'stop': {
      // Ctrl-C during a stop ends the wait; the server goes on stopping the job
      const e =
        inv.command === 'stop'
          ? await client.stop(inv.id, signal)
          : await client.get(inv.id, signal);
      if (inv.json) await json(toJson(e));
      else await write(deps.stdout, statusText(e));
      return EXIT.ok;
    }
    case 'output':
      return streamOutput(client, inv.id, deps);
  }
}

/** Runs cu-thor with `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const inv = parseCli(argv, deps.env, deps.home);
  switch (inv.kind) {
    case 'help':
      await write(deps.stdout, inv.text);
      return EXIT.ok;
    case 'usage-error':
      await write(deps.stderr, `cu-thor: ${inv.message} (see cu-thor --help)\n`);
      return EXIT.usage;
    case 'run':
      break;
  }
  let client: JobClient | undefined;
  // a reader that left makes stdout emit 'error' (EPIPE): the write in flight rejects with it
  const ignorePipeError = (): void => undefined;
  deps.stdout.on('error', ignorePipeError);
  try {
    client = await (deps.connect ?? defaultConnect)(inv.server, inv.credDir);
    return await execute(inv, client, deps);
  } catch (err) {
    if (deps.signal?.aborted === true) return EXIT.interrupted;
    if (isBrokenPipe(err)) return EXIT.brokenPipe;
    const { code, line } = describeError(err, inv.server);
    await write(deps.stderr, `cu-thor: ${inv.command}: ${line}\n`);
    return code;
  } finally {
    deps.stdout.off('error', ignorePipeError);
    client?.close();
  }
}
