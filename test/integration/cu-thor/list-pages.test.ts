import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadJobExec } from '../../../shared/proto/index.ts';
import type { ListAllExecutionsResponse } from '../../../shared/proto/jobexec.ts';
import { EXIT } from '../../../daemons/cu-thor/args.ts';
import {
  channelCredentials,
  createJobClient,
  readCredentials,
  type JobClient,
} from '../../../daemons/cu-thor/client.ts';
import { LIST_PAGE } from '../../../daemons/cu-thor-server/list.ts';
import { cleanup, cli, fixture, startServer, type Fixture, type RunningServer } from './helpers.ts';

// 40 executions of 120 KiB of arguments each: 4.8 MiB, past the 4 MiB a single answer may carry
const COUNT = 40;
const ARG = 'x'.repeat(120 * 1024);

describe('listing more executions than one gRPC message holds', () => {
  let f: Fixture;
  let server: RunningServer;
  let client: JobClient;
  let creds: grpc.ChannelCredentials;
  // ids in the list's order: by start time, then id
  let started: string[] = [];

  before(async () => {
    f = await fixture();
    server = await startServer(f, 'max_concurrent = 64');
    creds = channelCredentials(await readCredentials(path.join(f.certs, 'client1')));
    client = createJobClient(server.address, creds);
    const keys: { ms: number; id: string }[] = [];
    for (let i = 0; i < COUNT; i++) {
      const e = await client.execute({ command: 'true', args: [String(i), ARG] });
      const at = e.startedAt!;
      keys.push({ ms: Number(at.seconds) * 1000 + Math.floor(at.nanos / 1e6), id: e.id });
    }
    started = keys.sort((a, b) => a.ms - b.ms || (a.id < b.id ? -1 : 1)).map((k) => k.id);
  });

  after(async () => {
    client.close();
    await server.stop();
    await cleanup(f);
  });

  it('cu-thor list --json shows every execution, oldest first, across pages', async () => {
    const r = await cli(f, server, 'client1', ['list', '--json']);
    assert.equal(r.code, EXIT.ok, r.err);
    const list = JSON.parse(r.out) as { id: string; args: string[] }[];
    assert.deepEqual(
      list.map((e) => e.id),
      started,
    );
    assert.ok(list.every((e) => e.args[1] === ARG));
  });

  it('cu-thor list as a table has one line per execution', async () => {
    const r = await cli(f, server, 'client1', ['list']);
    assert.equal(r.code, EXIT.ok, r.err);
    for (const id of started) assert.ok(r.out.includes(id), id);
  });

  it('the library list() follows every page', async () => {
    const all = await client.list();
    assert.deepEqual(
      all.map((e) => e.id),
      started,
    );
  });

  it('an old client sending no paging fields gets a first page under 4 MiB and a token', async () => {
    const raw = new (loadJobExec().hostplane.jobexec.v1.JobExecutor)(server.address, creds);
    try {
      const page = await new Promise<ListAllExecutionsResponse>((resolve, reject) => {
        raw.listAllExecutions({}, (err, res) => {
          if (err !== null) reject(err);
          else resolve(res!);
        });
      });
      assert.ok(page.executions.length >= 1 && page.executions.length < COUNT);
      const bytes = page.executions.reduce((n, e) => n + e.args.join('').length, 0);
      assert.ok(bytes <= LIST_PAGE.maxBytes, `${bytes} bytes of arguments in one page`);
      assert.notEqual(page.nextPageToken, '');
      assert.deepEqual(
        page.executions.map((e) => e.id),
        started.slice(0, page.executions.length),
      );
    } finally {
      raw.close();
    }
  });
});
