import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import {
  channelCredentials,
  createJobClient,
  readCredentials,
  type JobClient,
} from '../../../daemons/cu-thor/client.ts';
import { cleanup, fixture, startServer, type Fixture, type RunningServer } from './helpers.ts';

describe('many readers of one execution', () => {
  let f: Fixture;
  let server: RunningServer;
  let clients: JobClient[] = [];

  before(async () => {
    f = await fixture();
    server = await startServer(f, 'max_output_bytes = "512MiB"');
    const creds = channelCredentials(await readCredentials(path.join(f.certs, 'client1')));
    clients = Array.from({ length: 4 }, () => createJobClient(server.address, creds));
  });

  after(async () => {
    for (const c of clients) c.close();
    await server.stop();
    await cleanup(f);
  });

  it('100 concurrent readers all receive identical bytes, from the first one', async () => {
    // ~2.2 MB of distinct lines, written while the readers follow
    const e = await clients[0]!.execute({ command: 'seq', args: ['1', '300000'] });
    const digests = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const h = createHash('sha256');
        let n = 0;
        for await (const c of clients[i % clients.length]!.output(e.id)) {
          if (c.data) {
            h.update(c.data.data);
            n += c.data.data.length;
          }
        }
        return `${n}:${h.digest('hex')}`;
      }),
    );
    const want = createHash('sha256');
    for (let i = 1; i <= 300000; i++) want.update(`${i}\n`);
    const expected = want.digest('hex');
    assert.equal(new Set(digests).size, 1);
    assert.ok(digests[0]!.endsWith(`:${expected}`), digests[0]);
  });

  it('a reader that never reads does not slow the job down', async () => {
    const e = await clients[0]!.execute({
      command: 'head',
      args: ['-c', String(64 * 1024 * 1024), '/dev/zero'],
    });
    // open a stream and never consume it
    const stalled = new AbortController();
    const it = clients[1]!.output(e.id, stalled.signal)[Symbol.asyncIterator]();
    void it.next().catch(() => undefined);
    try {
      const deadline = Date.now() + 30_000;
      let status = 'EXECUTION_STATUS_RUNNING';
      while (status === 'EXECUTION_STATUS_RUNNING' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        status = (await clients[2]!.get(e.id)).status;
      }
      assert.equal(status, 'EXECUTION_STATUS_EXITED');
      const info = await clients[2]!.get(e.id);
      assert.equal(Number(info.outputBytes), 64 * 1024 * 1024);
    } finally {
      stalled.abort();
    }
  });
});
