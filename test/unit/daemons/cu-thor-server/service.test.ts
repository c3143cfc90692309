import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { createMemoryLogger } from '../../../../shared/log/index.ts';
import { loadJobExec } from '../../../../shared/proto/index.ts';
import type { JobExecutorClient, GetOutStreamResponse } from '../../../../shared/proto/jobexec.ts';
import {
  createJobExecutorService,
  MAX_MESSAGE_DATA,
  MAX_PENDING_BYTES,
  SERVER_CHANNEL_OPTIONS,
  streamPendingBytes,
  streamReadBytes,
  type JobExecutorService,
} from '../../../../daemons/cu-thor-server/service.ts';
import { ReloadableServerCredentials } from '../../../../daemons/cu-thor-server/credentials.ts';
import { makePki } from './tls-fixture.ts';
import { FakeExecutor } from './fake-executor.ts';

const pki = await makePki(['client1', 'client2']);

function client(address: string, cn: 'client1' | 'client2'): JobExecutorClient {
  const c = pki.clients[cn]!;
  const creds = grpc.credentials.createFromSecureContext(
    tls.createSecureContext({ ca: pki.ca, cert: c.cert, key: c.key, minVersion: 'TLSv1.3' }),
  );
  return new (loadJobExec().hostplane.jobexec.v1.JobExecutor)(address, creds, {
    'grpc-node.flow_control_window': 16 * 1024 * 1024,
  });
}

function call<T>(fn: (cb: (err: grpc.ServiceError | null, res?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    fn((err, res) => {
      if (err !== null) reject(err);
      else resolve(res!);
    });
  });
}

async function rejectsWith(p: Promise<unknown>, code: grpc.status, match?: RegExp): Promise<void> {
  await assert.rejects(p, (err: grpc.ServiceError) => {
    assert.equal(err.code, code, `expected ${grpc.status[code]}, got ${err.code}: ${err.details}`);
    if (match !== undefined) assert.match(err.details, match);
    return true;
  });
}

async function collect(
  stream: AsyncIterable<GetOutStreamResponse>,
): Promise<GetOutStreamResponse[]> {
  const out: GetOutStreamResponse[] = [];
  for await (const m of stream) out.push(m);
  return out;
}

/** A gRPC server with `service` on 127.0.0.1:0 over mTLS, and its `localhost:PORT`. */
async function serve(
  service: JobExecutorService,
): Promise<{ server: grpc.Server; address: string }> {
  const server = new grpc.Server(SERVER_CHANNEL_OPTIONS);
  server.addService(loadJobExec().hostplane.jobexec.v1.JobExecutor.service, service.handlers);
  const creds = new ReloadableServerCredentials({
    ca: pki.ca,
    cert: pki.server.cert,
    key: pki.server.key,
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', creds, (err, p) => {
      if (err) reject(err);
      else resolve(p);
    });
  });
  return { server, address: `localhost:${port}` };
}

describe('JobExecutor gRPC service', () => {
  const executor = new FakeExecutor();
  const { log } = createMemoryLogger();
  let service: JobExecutorService;
  let server: grpc.Server;
  let address = '';
  let c1: JobExecutorClient;
  let c2: JobExecutorClient;

  before(async () => {
    service = createJobExecutorService({ executor, log });
    ({ server, address } = await serve(service));
    c1 = client(address, 'client1');
    c2 = client(address, 'client2');
  });

  after(() => {
    c1.close();
    c2.close();
    server.forceShutdown();
  });

  const start = (c: JobExecutorClient, command: string, args: string[] = []) =>
    call<{ id: string; execution: { owner: string; status: string } | null }>((cb) =>
      c.executeCommand({ command, args }, cb),
    );

  it('ExecuteCommand answers a UUID id and metadata owned by the client certificate CN', async () => {
    const res = await start(c1, 'echo', ['hi']);
    assert.match(res.id, /^[0-9a-f-]{36}$/);
    assert.ok(res.execution);
    assert.equal(res.execution.owner, 'client1');
    assert.equal(res.execution.status, 'EXECUTION_STATUS_RUNNING');
    const got = await call<{ execution: { id: string; args: string[] } | null }>((cb) =>
      c1.getExecution({ id: res.id }, cb),
    );
    assert.ok(got.execution);
    assert.equal(got.execution.id, res.id);
    assert.deepEqual(got.execution.args, ['hi']);
  });

  it('another CN gets NOT_FOUND for an id it did not start and does not see it in its list', async () => {
    const { id } = await start(c1, 'sleep', ['100']);
    await rejectsWith(
      call((cb) => c2.getExecution({ id }, cb)),
      grpc.status.NOT_FOUND,
    );
    await rejectsWith(
      call((cb) => c2.stopExecution({ id }, cb)),
      grpc.status.NOT_FOUND,
    );
    await rejectsWith(collect(c2.getOutStream({ id })), grpc.status.NOT_FOUND);
    const list2 = await call<{ executions: { id: string }[] }>((cb) =>
      c2.listAllExecutions({}, cb),
    );
    assert.ok(!list2.executions.some((e) => e.id === id));
    const list1 = await call<{ executions: { id: string }[] }>((cb) =>
      c1.listAllExecutions({}, cb),
    );
    assert.ok(list1.executions.some((e) => e.id === id));
    assert.equal(executor.jobs.get(id)?.info().status, 'running', 'the foreign stop did nothing');
  });

  it("an unknown id and another owner's id get the same answer, so ids do not leak", async () => {
    const { id } = await start(c1, 'true');
    const unknown = randomUUID();
    const a = await call((cb) => c2.getExecution({ id }, cb)).catch((e: unknown) => e);
    const b = await call((cb) => c2.getExecution({ id: unknown }, cb)).catch((e: unknown) => e);
    assert.equal((a as grpc.ServiceError).code, (b as grpc.ServiceError).code);
    assert.equal(
      (a as grpc.ServiceError).details.replace(id, 'X'),
      (b as grpc.ServiceError).details.replace(unknown, 'X'),
    );
  });

  it('bad requests get INVALID_ARGUMENT with a message saying what is wrong', async () => {
    await rejectsWith(
      call((cb) => c1.getExecution({ id: '42' }, cb)),
      grpc.status.INVALID_ARGUMENT,
      /not a UUID/,
    );
    await rejectsWith(start(c1, ''), grpc.status.INVALID_ARGUMENT, /command is empty/);
    await rejectsWith(start(c1, '   '), grpc.status.INVALID_ARGUMENT, /command is empty/);
    await rejectsWith(
      start(c1, 'echo', ['x'.repeat(200 * 1024)]),
      grpc.status.INVALID_ARGUMENT,
      /more than/,
    );
    await rejectsWith(
      start(
        c1,
        'echo',
        Array.from({ length: 100 }, () => 'y'.repeat(2000)),
      ),
      grpc.status.INVALID_ARGUMENT,
      /command line is \d+ bytes/,
    );
    await rejectsWith(
      call((cb) => c1.executeCommand({ command: 'x', limits: { cpuPercent: 500 } }, cb)),
      grpc.status.INVALID_ARGUMENT,
      /above the configured maximum/,
    );
    await rejectsWith(
      call((cb) => c1.executeCommand({ command: 'x', limits: { memoryMaxBytes: '0' } }, cb)),
      grpc.status.INVALID_ARGUMENT,
      /must be positive/,
    );
  });

  it('an id whose cut would split a surrogate pair gets INVALID_ARGUMENT on every RPC and the server serves on', async () => {
    // 63 ASCII then an emoji: a cut at 64 UTF-16 units leaves a lone surrogate
    const id = 'a'.repeat(63) + '\u{1F600}' + 'b'.repeat(10);
    const deadline = () => ({ deadline: Date.now() + 5_000 });
    await rejectsWith(
      call((cb) => c1.getExecution({ id }, deadline(), cb)),
      grpc.status.INVALID_ARGUMENT,
      /not a UUID/,
    );
    await rejectsWith(
      call((cb) => c1.stopExecution({ id }, deadline(), cb)),
      grpc.status.INVALID_ARGUMENT,
      /not a UUID/,
    );
    await rejectsWith(
      collect(c1.getOutStream({ id }, deadline()) as AsyncIterable<GetOutStreamResponse>),
      grpc.status.INVALID_ARGUMENT,
      /not a UUID/,
    );
    // the echo is cut on a code point and escaped: never the whole id
    await rejectsWith(
      call((cb) => c1.getExecution({ id: 'z'.repeat(100_000) }, deadline(), cb)),
      grpc.status.INVALID_ARGUMENT,
      /^execution id "z{64}…" is not a UUID$/,
    );
    const res = await start(c1, 'true');
    assert.match(res.id, /^[0-9a-f-]{36}$/);
  });

  it('limits.io is bounded in entries and device length, and the refusal does not echo the device', async () => {
    const io = (n: number, device = '/dev/vda') =>
      Array.from({ length: n }, () => ({ device, rbps: '1000' }));
    await rejectsWith(
      call((cb) => c1.executeCommand({ command: 'x', limits: { io: io(65) } }, cb)),
      grpc.status.INVALID_ARGUMENT,
      /limits\.io has 65 entries, more than 64/,
    );
    const long = '/dev/' + 'x'.repeat(100_000);
    await assert.rejects(
      call((cb) => c1.executeCommand({ command: 'x', limits: { io: io(1, long) } }, cb)),
      (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
        assert.match(err.details, /limits\.io\[0\]\.device is 100005 bytes, more than 4096/);
        assert.ok(err.details.length < 300, `details of ${err.details.length} characters`);
        return true;
      },
    );
  });

  it('executor refusals keep their meaning: too many jobs is RESOURCE_EXHAUSTED', async () => {
    executor.maxConcurrent = executor.jobs.size;
    try {
      await rejectsWith(start(c1, 'true'), grpc.status.RESOURCE_EXHAUSTED);
    } finally {
      executor.maxConcurrent = 100;
    }
  });

  it('GetOutStream sends everything from the first byte, tagged by stream, then live until the end', async () => {
    const { id } = await start(c1, 'job');
    const job = executor.jobs.get(id)!;
    job.emit({ kind: 'data', stream: 'stdout', data: Buffer.from('one\n') });
    job.emit({ kind: 'data', stream: 'stderr', data: Buffer.from('two\n') });
    const stream = c1.getOutStream({ id });
    const received: GetOutStreamResponse[] = [];
    const done = (async () => {
      for await (const m of stream as AsyncIterable<GetOutStreamResponse>) {
        received.push(m);
        if (received.length === 2) {
          job.emit({ kind: 'data', stream: 'stdout', data: Buffer.from('three\n') });
          job.emit({ kind: 'truncated' });
          job.finish('exited', 0);
        }
      }
    })();
    await done;
    assert.deepEqual(
      received.map((m) =>
        m.data ? `${m.data.stream}:${m.data.data.toString()}` : m.truncated ? 'truncated' : '?',
      ),
      ['STREAM_STDOUT:one\n', 'STREAM_STDERR:two\n', 'STREAM_STDOUT:three\n', 'truncated'],
    );
  });

  it('a chunk larger than one message arrives split but byte-identical', async () => {
    const { id } = await start(c1, 'big');
    const job = executor.jobs.get(id)!;
    const big = Buffer.alloc(3 * MAX_MESSAGE_DATA + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    job.emit({ kind: 'data', stream: 'stdout', data: big });
    job.finish('exited', 0);
    const msgs = await collect(c1.getOutStream({ id }));
    assert.ok(msgs.length >= 4);
    assert.ok(msgs.every((m) => (m.data?.data.length ?? 0) <= MAX_MESSAGE_DATA));
    assert.ok(Buffer.concat(msgs.map((m) => m.data!.data)).equals(big));
  });

  it('readers read smaller pieces as more output streams are open, within the pending bound', async () => {
    const { id } = await start(c1, 'forever');
    const job = executor.jobs.get(id)!;
    const streams = Array.from({ length: 30 }, () => c1.getOutStream({ id }));
    for (const s of streams) s.on('error', () => undefined);
    const t0 = Date.now();
    while (job.readers < 30 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
    assert.equal(job.readers, 30);
    const sizes = job.readBytesSeen;
    assert.equal(sizes.length, 30);
    // the first reader alone reads big pieces; the 30th, with 29 others open, small ones
    assert.equal(sizes[0], streamReadBytes(1));
    assert.equal(sizes.at(-1), streamReadBytes(30));
    assert.ok(streamReadBytes(30) < streamReadBytes(1));
    for (const s of streams) s.cancel();
    // a stream never holds more than MAX_PENDING_BYTES unsent, fewer when many are open
    for (const n of [1, 4, 5, 16, 17, 48, 49, 100, 1000]) {
      assert.ok(streamPendingBytes(n) <= MAX_PENDING_BYTES);
      assert.ok(streamReadBytes(n) >= 16 * 1024);
      assert.ok(streamReadBytes(n + 1) <= streamReadBytes(n));
    }
  });

  it('a client cancelling GetOutStream ends the server-side reader', async () => {
    const { id } = await start(c1, 'forever');
    const job = executor.jobs.get(id)!;
    job.emit({ kind: 'data', stream: 'stdout', data: Buffer.from('x') });
    const stream = c1.getOutStream({ id });
    await new Promise<void>((resolve) =>
      stream.once('data', () => {
        resolve();
      }),
    );
    const readers = (): number => job.readers;
    assert.equal(readers(), 1);
    stream.on('error', () => undefined);
    stream.cancel();
    const t0 = Date.now();
    while (readers() > 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(job.readers, 0, 'the executor output iterator was released');
  });

  it('StopExecution answers the final metadata', async () => {
    const { id } = await start(c1, 'sleep');
    const res = await call<{ execution: { status: string } | null }>((cb) =>
      c1.stopExecution({ id }, cb),
    );
    assert.equal(res.execution?.status, 'EXECUTION_STATUS_STOPPED');
  });

  it('a TLS 1.2-only client is refused', async () => {
    const c = pki.clients['client1']!;
    const creds = grpc.credentials.createFromSecureContext(
      tls.createSecureContext({ ca: pki.ca, cert: c.cert, key: c.key, maxVersion: 'TLSv1.2' }),
    );
    const old = new (loadJobExec().hostplane.jobexec.v1.JobExecutor)(address, creds);
    try {
      await rejectsWith(
        call((cb) => old.listAllExecutions({}, cb)),
        grpc.status.UNAVAILABLE,
      );
    } finally {
      old.close();
    }
  });

  it('a client without a certificate is refused', async () => {
    const creds = grpc.credentials.createFromSecureContext(tls.createSecureContext({ ca: pki.ca }));
    const anon = new (loadJobExec().hostplane.jobexec.v1.JobExecutor)(address, creds);
    try {
      await assert.rejects(call((cb) => anon.listAllExecutions({}, cb)));
    } finally {
      anon.close();
    }
  });

  it('close() ends open output streams with UNAVAILABLE', async () => {
    const { id } = await start(c1, 'forever');
    const stream = c1.getOutStream({ id });
    const result = collect(stream as AsyncIterable<GetOutStreamResponse>);
    while (executor.jobs.get(id)!.readers === 0) await new Promise((r) => setTimeout(r, 5));
    service.close();
    await rejectsWith(result, grpc.status.UNAVAILABLE, /shutting down/);
  });
});

describe('JobExecutor gRPC service stream caps', () => {
  const executor = new FakeExecutor();
  const { log } = createMemoryLogger();
  let service: JobExecutorService;
  let server: grpc.Server;
  let c1: JobExecutorClient;
  let c2: JobExecutorClient;

  before(async () => {
    service = createJobExecutorService({ executor, log, maxStreams: 3, maxStreamsPerOwner: 2 });
    let address: string;
    ({ server, address } = await serve(service));
    c1 = client(address, 'client1');
    c2 = client(address, 'client2');
  });

  after(() => {
    c1.close();
    c2.close();
    server.forceShutdown();
  });

  it('sets a per-connection cap on concurrent calls', () => {
    assert.equal(SERVER_CHANNEL_OPTIONS['grpc.max_concurrent_streams'], 128);
  });

  it('refuses output streams past the per-client and the total cap with RESOURCE_EXHAUSTED, and admits again once one ends', async () => {
    const start = (c: JobExecutorClient) =>
      call<{ id: string }>((cb) => c.executeCommand({ command: 'forever', args: [] }, cb));
    const { id: id1 } = await start(c1);
    const { id: id2 } = await start(c2);
    const open: grpc.ClientReadableStream<GetOutStreamResponse>[] = [];
    const openStream = async (c: JobExecutorClient, id: string, n: number): Promise<void> => {
      const s = c.getOutStream({ id });
      s.on('error', () => undefined);
      open.push(s);
      while (service.openStreams < n) await new Promise((r) => setTimeout(r, 5));
    };
    try {
      await openStream(c1, id1, 1);
      await openStream(c1, id1, 2);
      await rejectsWith(
        collect(c1.getOutStream({ id: id1 }) as AsyncIterable<GetOutStreamResponse>),
        grpc.status.RESOURCE_EXHAUSTED,
        /output streams of client1 are open, the maximum per client is 2/,
      );
      await openStream(c2, id2, 3);
      await rejectsWith(
        collect(c2.getOutStream({ id: id2 }) as AsyncIterable<GetOutStreamResponse>),
        grpc.status.RESOURCE_EXHAUSTED,
        /3 output streams are open, the server's maximum is 3/,
      );
      open.shift()!.cancel();
      while (service.openStreams > 2) await new Promise((r) => setTimeout(r, 5));
      await openStream(c1, id1, 3);
    } finally {
      for (const s of open) s.cancel();
    }
  });
});

describe('JobExecutor gRPC service ListAllExecutions pages', () => {
  const executor = new FakeExecutor();
  executor.maxConcurrent = 1000;
  const { log } = createMemoryLogger();
  let server: grpc.Server;
  let c1: JobExecutorClient;
  let c2: JobExecutorClient;
  // ids in the list's order: by start time, then id
  let ids: string[] = [];
  const COUNT = 150;

  type Page = { executions: { id: string; args: string[] }[]; nextPageToken: string };
  const list = (c: JobExecutorClient, req: { pageSize?: number; pageToken?: string }) =>
    call<Page>((cb) => c.listAllExecutions(req, cb));

  before(async () => {
    let address: string;
    ({ server, address } = await serve(createJobExecutorService({ executor, log })));
    c1 = client(address, 'client1');
    c2 = client(address, 'client2');
    // 36 of them carry 120 KiB of arguments: 4.3 MiB together, more than one message may hold
    const big = 'z'.repeat(120 * 1024);
    const keys: { ms: number; id: string }[] = [];
    for (let i = 0; i < COUNT; i++) {
      const res = await call<{ id: string }>((cb) =>
        c1.executeCommand({ command: 'job', args: i % 4 === 0 && i < 144 ? [big] : [] }, cb),
      );
      keys.push({ ms: executor.jobs.get(res.id)!.info().startedAt.getTime(), id: res.id });
      await call((cb) => c2.executeCommand({ command: 'other' }, cb));
    }
    ids = keys.sort((a, b) => a.ms - b.ms || (a.id < b.id ? -1 : 1)).map((k) => k.id);
  });

  after(() => {
    c1.close();
    c2.close();
    server.forceShutdown();
  });

  async function all(pageSize?: number): Promise<Page[]> {
    const pages: Page[] = [];
    let pageToken = '';
    do {
      const p = await list(c1, { ...(pageSize === undefined ? {} : { pageSize }), pageToken });
      pages.push(p);
      pageToken = p.nextPageToken;
    } while (pageToken !== '');
    return pages;
  }

  it('following next_page_token yields every execution of the caller once, in order', async () => {
    const pages = await all();
    assert.deepEqual(
      pages.flatMap((p) => p.executions.map((e) => e.id)),
      ids,
    );
    assert.ok(pages.length > 1);
  });

  it('page_size cuts pages at that many entries; the last page has no token', async () => {
    const small = await all(7);
    assert.deepEqual(
      small.map((p) => p.executions.length),
      [...Array<number>(21).fill(7), 3],
    );
    assert.equal(small.at(-1)!.nextPageToken, '');
    const exact = await list(c1, { pageSize: COUNT });
    assert.ok(exact.executions.length <= COUNT);
  });

  it('a request without paging fields (an older client) gets a bounded first page and a token', async () => {
    const p = await list(c1, {});
    assert.ok(p.executions.length >= 1 && p.executions.length <= 100);
    const argBytes = p.executions.reduce((n, e) => n + e.args.join('').length, 0);
    assert.ok(argBytes <= 1024 * 1024, `${argBytes} bytes of arguments`);
    assert.notEqual(p.nextPageToken, '');
    assert.deepEqual(
      p.executions.map((e) => e.id),
      ids.slice(0, p.executions.length),
    );
  });

  it('without big entries, a page without page_size holds 100 entries', async () => {
    const p = await list(c2, {});
    assert.equal(p.executions.length, 100);
    assert.notEqual(p.nextPageToken, '');
    const rest = await list(c2, { pageToken: p.nextPageToken, pageSize: 5000 });
    assert.equal(rest.executions.length, COUNT - 100);
    assert.equal(rest.nextPageToken, '');
  });

  it('a page token that the server did not hand out is INVALID_ARGUMENT', async () => {
    for (const pageToken of ['bogus!', Buffer.from('v1:1:nope').toString('base64url'), 'AAAA']) {
      await rejectsWith(list(c1, { pageToken }), grpc.status.INVALID_ARGUMENT, /page_token/);
    }
  });
});
