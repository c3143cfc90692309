// The cu-thor side of the JobExecutor API: mTLS credentials from a directory, promise-shaped
// unary calls and an async-iterable output stream.
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { loadJobExec } from '../../shared/proto/index.ts';
import type {
  Execution,
  ExecuteCommandRequestIn,
  ExecuteCommandResponse,
  GetExecutionResponse,
  GetOutStreamResponse,
  JobExecutorClient,
  ListAllExecutionsRequestIn,
  ListAllExecutionsResponse,
  StopExecutionResponse,
} from '../../shared/proto/jobexec.ts';
import { clientContextOptions, readCertificates } from '../../shared/tls/index.ts';

/** The credentials directory or one of its files cannot be read. */
export class CredentialsError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CredentialsError';
  }
}

/** Channel options: a large HTTP/2 window is what lets one output stream reach 300+ MB/s. */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
};

export interface Credentials {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Reads ca.crt, client.crt and client.key from `dir` and checks the key fits the certificate. */
export async function readCredentials(dir: string): Promise<Credentials> {
  const files = {
    ca: path.join(dir, 'ca.crt'),
    cert: path.join(dir, 'client.crt'),
    key: path.join(dir, 'client.key'),
  };
  // one file after the other, so the error names the first missing one, whatever the timing
  for (const file of [files.ca, files.cert, files.key]) {
    try {
      await access(file, constants.R_OK);
    } catch (cause) {
      const why = (cause as NodeJS.ErrnoException).code ?? String(cause);
      throw new CredentialsError(`reading client credentials ${file}: ${why}`, { cause });
    }
  }
  try {
    const { ca, cert, key } = await readCertificates(files);
    // readCertificates returns the CA whenever its file is named, as here
    if (ca === undefined) throw new Error(`${files.ca} was not read`);
    return { ca, cert, key };
  } catch (cause) {
    throw new CredentialsError(
      `reading client credentials in ${dir}: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** The TLS context of a cu-thor client, from shared/tls's client options. */
export function clientSecureContext(creds: Credentials): tls.SecureContext {
  try {
    return tls.createSecureContext(clientContextOptions(creds));
  } catch (cause) {
    throw new CredentialsError(`loading client credentials: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/** Client credentials from shared/tls: TLS 1.3 only, server verified, client certificate sent. */
export function channelCredentials(creds: Credentials): grpc.ChannelCredentials {
  return grpc.credentials.createFromSecureContext(clientSecureContext(creds), {
    rejectUnauthorized: true,
  });
}

/** Every call takes an optional `signal`: aborting it cancels the call (CANCELLED). */
export interface JobClient {
  execute(req: ExecuteCommandRequestIn, signal?: AbortSignal): Promise<Execution>;
  stop(id: string, signal?: AbortSignal): Promise<Execution>;
  get(id: string, signal?: AbortSignal): Promise<Execution>;
  /** every execution of the caller, oldest first: all pages of ListAllExecutions. */
  list(signal?: AbortSignal): Promise<Execution[]>;
  /** one page of ListAllExecutions; `pageToken` is the previous page's nextPageToken. */
  listPage(
    req: ListAllExecutionsRequestIn,
    signal?: AbortSignal,
  ): Promise<ListAllExecutionsResponse>;
  /** the output stream; aborting `signal` cancels the call. */
  output(id: string, signal?: AbortSignal): AsyncIterable<GetOutStreamResponse>;
  close(): void;
}

function unary<Res>(
  call: (cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall,
  signal?: AbortSignal,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const cancel = (): void => {
      started.cancel();
    };
    const started = call((err, res) => {
      signal?.removeEventListener('abort', cancel);
      if (err !== null) reject(err);
      else if (res === undefined) reject(new Error('empty answer from server'));
      else resolve(res);
    });
    if (signal?.aborted === true) cancel();
    else signal?.addEventListener('abort', cancel, { once: true });
  });
}

function need(e: Execution | null): Execution {
  if (e === null) throw new Error('server answered without execution metadata');
  return e;
}

/** A client of the server at `address` (HOST:PORT). */
export function createJobClient(
  address: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ChannelOptions = {},
): JobClient {
  const proto = loadJobExec();
  const client: JobExecutorClient = new proto.hostplane.jobexec.v1.JobExecutor(
    address,
    credentials,
    {
      ...CHANNEL_OPTIONS,
      ...options,
    },
  );
  const listPage = (
    req: ListAllExecutionsRequestIn,
    signal?: AbortSignal,
  ): Promise<ListAllExecutionsResponse> =>
    unary<ListAllExecutionsResponse>((cb) => client.listAllExecutions(req, cb), signal);
  return {
    execute: async (req, signal) =>
      need(
        (await unary<ExecuteCommandResponse>((cb) => client.executeCommand(req, cb), signal))
          .execution,
      ),
    stop: async (id, signal) =>
      need(
        (await unary<StopExecutionResponse>((cb) => client.stopExecution({ id }, cb), signal))
          .execution,
      ),
    get: async (id, signal) =>
      need(
        (await unary<GetExecutionResponse>((cb) => client.getExecution({ id }, cb), signal))
          .execution,
      ),
    listPage,
    list: async (signal) => {
      const all: Execution[] = [];
      const seen = new Set<string>();
      let pageToken = '';
      do {
        const page = await listPage({ pageToken }, signal);
        all.push(...page.executions);
        pageToken = page.nextPageToken;
        // a server handing out the same token twice would page forever
        if (seen.has(pageToken)) {
          throw new Error(`listing executions: the server repeated page token ${pageToken}`);
        }
        seen.add(pageToken);
      } while (pageToken !== '');
      return all;
    },
    output: (id, signal) => {
      const call = client.getOutStream({ id });
      if (signal !== undefined) {
        if (signal.aborted) call.cancel();
        else
          signal.addEventListener(
            'abort',
            () => {
              call.cancel();
            },
            { once: true },
          );
      }
      return call as AsyncIterable<GetOutStreamResponse>;
    },
    close: () => {
      client.close();
    },
  };
}
