import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryLogger, silentLogger } from '../../../../shared/log/index.ts';
import type { PageCache } from '../../../../shared/native/pagecache.ts';
import {
  encodeHeader,
  OutputWriter,
  readOutput,
  ReusedReadBuffers,
  TAG_STDERR,
  TAG_STDOUT,
  TAG_TRUNCATED,
} from '../../../../daemons/cu-thor-server/output.ts';
import type { OutputChunk } from '../../../../daemons/cu-thor-server/types.ts';

let dir: string;
let n = 0;
const file = () => join(dir, `out-${n++}`);
const log = silentLogger();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cu-thor-output-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(it: AsyncIterable<OutputChunk>): Promise<OutputChunk[]> {
  const out: OutputChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

/** chunks as text: "o:hello" / "e:oops" / "T" */
const text = (chunks: OutputChunk[]) =>
  chunks.map((c) => (c.kind === 'truncated' ? 'T' : `${c.stream[3]}:${c.data.toString()}`));

/** merges adjacent chunks of one stream, so results compare independently of read sizes */
function merged(chunks: OutputChunk[]): string[] {
  const out: string[] = [];
  for (const t of text(chunks)) {
    const last = out.at(-1);
    if (last !== undefined && t !== 'T' && last !== 'T' && last[0] === t[0]) {
      out[out.length - 1] = last + t.slice(2);
    } else out.push(t);
  }
  return out;
}

describe('OutputWriter', () => {
  it('writes tag, big-endian length and data for each append', async () => {
    const p = file();
    const w = OutputWriter.create(p, { maxBytes: 1000, log });
    w.append('stdout', Buffer.from('hi'));
    w.append('stderr', Buffer.from('err'));
    await w.end();
    const want = Buffer.concat([
      encodeHeader(TAG_STDOUT, 2),
      Buffer.from('hi'),
      encodeHeader(TAG_STDERR, 3),
      Buffer.from('err'),
    ]);
    assert.deepEqual(await readFile(p), want);
    assert.deepEqual([...want.subarray(0, 5)], [1, 0, 0, 0, 2]);
    assert.equal(w.dataBytes, 5);
    assert.equal(w.committed, want.length);
    assert.equal(w.ended, true);
  });

  it('keeps data up to the cap, then one truncated record, and drops the rest', async () => {
    const p = file();
    const w = OutputWriter.create(p, { maxBytes: 10, log });
    w.append('stdout', Buffer.from('123456'));
    w.append('stderr', Buffer.from('abcdef'));
    w.append('stdout', Buffer.from('more'));
    await w.end();
    assert.equal(w.dataBytes, 10);
    assert.equal(w.truncated, true);
    assert.deepEqual(text(await collect(readOutput(p, null))), ['o:123456', 'e:abcd', 'T']);
    const raw = await readFile(p);
    assert.equal(raw[raw.length - 5], TAG_TRUNCATED);
  });
});

describe('readOutput', () => {
  it('yields adjacent records of one stream as one chunk, in write order', async () => {
    const p = file();
    const w = OutputWriter.create(p, { maxBytes: 1 << 20, log });
    for (const s of ['a', 'b', 'c']) w.append('stdout', Buffer.from(s));
    w.append('stderr', Buffer.from('E'));
    w.append('stdout', Buffer.from('d'));
    await w.end();
    assert.deepEqual(text(await collect(readOutput(p, w))), ['o:abc', 'e:E', 'o:d']);
  });

  it('reassembles records split across small reads, headers included', async () => {
    const p = file();
    const w = OutputWriter.create(p, { maxBytes: 1 << 20, log });
    const parts: ['stdout' | 'stderr', string][] = [];
    for (let i = 0; i < 200; i++) {
      const s = i % 3 === 0 ? 'stderr' : 'stdout';
      parts.push([s, `${i}:${'x'.repeat(i % 17)}`]);
      w.append(s, Buffer.from(`${i}:${'x'.repeat(i % 17)}`));
    }
    await w.end();
    const want = merged(parts.map(([s, d]) => ({ kind: 'data', stream: s, data: Buffer.from(d) })));
    for (const bufferSize of [1, 4, 5, 6, 7, 13, 64, 4096]) {
      assert.deepEqual(
        merged(await collect(readOutput(p, null, { bufferSize }))),
        want,
        `${bufferSize}`,
      );
    }
  });

  it('asks a bufferSize function before every read, so a reader can shrink while it runs', async () => {
    const p = file();
    const w = OutputWriter.create(p, { maxBytes: 1 << 20, log });
    const data = Buffer.alloc(10_000, 'y');
    w.append('stdout', data);
    await w.end();
    const sizes = [4096, 1024, 64];
    let calls = 0;
    const bufferSize = (): number => sizes[Math.min(calls++, sizes.length - 1)]!;
    const chunks = await collect(readOutput(p, null, { bufferSize }));
    // 4096 + 1024, then 64 a read: at least 2 + ceil((10_005 - 5120) / 64) = 79 reads
    assert.ok(calls >= 79, `${calls} reads`);
    assert.ok(chunks.every((c) => c.kind !== 'data' || c.data.length <= 4096));
    assert.deepEqual(merged(chunks), merged([{ kind: 'data', stream: 'stdout', data }]));
  });

  it('follows a live writer from byte 0 and ends when the writer ends', async () => {
    const p = file();
    const w = OutputWriter.create(p, { maxBytes: 1 << 20, log });
    w.append('stdout', Buffer.from('early '));
    const reading = collect(readOutput(p, w));
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setImmediate(r));
      w.append(i % 2 === 0 ? 'stdout' : 'stderr', Buffer.from(`${i} `));
    }
    await w.end();
    assert.deepEqual(merged(await reading), ['o:early 0 ', 'e:1 ', 'o:2 ', 'e:3 ', 'o:4 ']);
  });

  it('a reader started after the end reads the whole output', async () => {
    const p = file();
    const w = OutputWriter.create(p, { maxBytes: 1 << 20, log });
    w.append('stdout', Buffer.from('all of it'));
    await w.end();
    assert.deepEqual(text(await collect(readOutput(p, w))), ['o:all of it']);
  });

  it('the writer finishes while a reader sits unread, and that reader still gets everything', async () => {
    const p = file();
    const w = OutputWriter.create(p, { maxBytes: 64 << 20, log });
    const block = Buffer.alloc(64 * 1024, 'z');
    w.append('stdout', block);
    const stalled = readOutput(p, w, { bufferSize: 1024 })[Symbol.asyncIterator]();
    const first = await stalled.next(); // starts the reader, then it is left alone
    for (let i = 1; i < 256; i++) w.append('stdout', block);
    await w.end(); // resolves without the stalled reader reading on
    let total = first.done === true || first.value.kind !== 'data' ? 0 : first.value.data.length;
    for (let r = await stalled.next(); r.done !== true; r = await stalled.next()) {
      if (r.value.kind === 'data') total += r.value.data.length;
    }
    assert.equal(total, 256 * block.length);
  });

  it('stops quietly when the abort signal fires while waiting for more', async () => {
    const p = file();
    const w = OutputWriter.create(p, { maxBytes: 100, log });
    w.append('stdout', Buffer.from('x'));
    const ac = new AbortController();
    const got: OutputChunk[] = [];
    const reading = (async () => {
      for await (const c of readOutput(p, w, { signal: ac.signal })) {
        got.push(c);
        ac.abort();
      }
    })();
    await reading;
    assert.deepEqual(text(got), ['o:x']);
    await w.end();
  });

  it('ignores a torn record header at the end of a file left by a crash', async () => {
    const p = file();
    await writeFile(
      p,
      Buffer.concat([encodeHeader(TAG_STDOUT, 3), Buffer.from('abc'), Buffer.from([1, 0])]),
    );
    assert.deepEqual(text(await collect(readOutput(p, null))), ['o:abc']);
  });

  it('reports a corrupt record tag with the file and offset', async () => {
    const p = file();
    await writeFile(p, Buffer.concat([encodeHeader(9, 0)]));
    await assert.rejects(collect(readOutput(p, null)), /bad record tag 9 at offset 0/);
  });
});

describe('OutputWriter page-cache dropping', () => {
  const MiB = 1024 * 1024;

  /** a PageCache that records calls and finishes each one when the test says so */
  function fakePageCache(opts: { fail?: boolean } = {}) {
    const calls: { offset: number; length: number; done: () => void }[] = [];
    const pc: PageCache = {
      path: 'fake',
      dropBehind: (_fd, offset, length) =>
        new Promise<void>((resolve, reject) => {
          calls.push({
            offset,
            length,
            done: () => {
              if (opts.fail === true) reject(new Error('dropping pages: EIO'));
              else resolve();
            },
          });
        }),
    };
    return { pc, calls };
  }

  /** appends `mib` MiB in 1 MiB pieces, one event-loop turn each (as pipe reads arrive) */
  async function feed(w: OutputWriter, mib: number): Promise<void> {
    for (let i = 0; i < mib; i++) {
      w.append('stdout', Buffer.alloc(MiB, i & 0xff));
      await new Promise((r) => setImmediate(r));
    }
  }

  it('drops page-aligned ranges behind the writer, keeping the newest bytes cached', async () => {
    const { pc, calls } = fakePageCache();
    const w = OutputWriter.create(file(), { maxBytes: 1024 * MiB, log, pageCache: pc });
    await feed(w, 40);
    assert.equal(calls.length, 0, 'nothing while everything fits in the kept 32 MiB + a step');
    await feed(w, 10);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.offset, 0);
    assert.equal(calls[0]!.length % 4096, 0);
    assert.ok(w.committed - calls[0]!.length >= 32 * MiB, 'the newest 32 MiB stay cached');
    await feed(w, 40);
    assert.equal(calls.length, 1, 'one call at a time');
    calls[0]!.done();
    await feed(w, 1);
    assert.equal(calls.length, 2);
    assert.equal(calls[1]!.offset, calls[0]!.length, 'the next range starts where the last ended');
    assert.ok(w.committed - (calls[1]!.offset + calls[1]!.length) >= 32 * MiB);
    calls[1]!.done();
    await w.end();
  });

  it('closes the file only after a running drop finished', async () => {
    const { pc, calls } = fakePageCache();
    const w = OutputWriter.create(file(), { maxBytes: 1024 * MiB, log, pageCache: pc });
    await feed(w, 50);
    assert.equal(calls.length, 1);
    let ended = false;
    const ending = w.end().then(() => (ended = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(ended, false, 'end waits for the drop');
    calls[0]!.done();
    await ending;
    assert.equal(w.ended, true);
  });

  it('keeps writing, and stops dropping, when a drop fails', async () => {
    const { pc, calls } = fakePageCache({ fail: true });
    const mem = createMemoryLogger();
    const p = file();
    const w = OutputWriter.create(p, { maxBytes: 1024 * MiB, log: mem.log, pageCache: pc });
    await feed(w, 50);
    calls[0]!.done();
    await feed(w, 60);
    assert.equal(calls.length, 1, 'no further attempts on this file');
    await w.end();
    assert.equal(w.error, null);
    assert.equal((await stat(p)).size, 110 * (MiB + 5));
    assert.ok(
      mem.records.some(
        (r) => String(r['msg']).includes('keeping it cached') && String(r['err']).includes('EIO'),
      ),
      JSON.stringify(mem.records),
    );
  });
});

describe('ReusedReadBuffers', () => {
  it('never hands out a buffer while a chunk cut from it is being sent', () => {
    const b = new ReusedReadBuffers();
    const first = b.take(1024);
    b.hold(first.subarray(0, 10));
    b.hold(first.subarray(10, 20));
    const second = b.take(1024);
    assert.notEqual(second.buffer, first.buffer, 'the first is still being sent');
    b.release(first.subarray(0, 10));
    const third = b.take(1024);
    assert.notEqual(third.buffer, first.buffer, 'one chunk of the first is still out');
    b.release(first.subarray(10, 20));
    const fourth = b.take(512);
    b.hold(fourth); // keeps the one after it from being this one again
    const fifth = b.take(512);
    assert.ok(
      [fourth.buffer, fifth.buffer].includes(first.buffer),
      'reused once everything cut from it was sent',
    );
    assert.notEqual(fifth.buffer, fourth.buffer);
    assert.equal(fifth.length, 512);
    assert.equal(b.allocated, 2);
  });

  it('reuses the buffer a reader moved on from when nothing of it is in flight', () => {
    const b = new ReusedReadBuffers();
    for (let i = 0; i < 1000; i++) {
      const buf = b.take(256 * 1024);
      b.hold(buf);
      b.release(buf);
    }
    assert.equal(b.allocated, 1, 'one buffer serves a reader whose sends finish at once');
  });

  it('allocates anew when a bigger read is asked for than any free buffer holds', () => {
    const b = new ReusedReadBuffers();
    b.take(100);
    b.take(100);
    assert.equal(b.allocated, 1);
    const big = b.take(4096);
    assert.equal(big.length, 4096);
    assert.equal(b.allocated, 2);
  });

  it('gives readOutput buffers whose chunks arrive intact when sends finish in order', async () => {
    const p = file();
    const w = OutputWriter.create(p, { maxBytes: 1 << 30, log });
    const want: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      const piece = Buffer.from(`line ${i} `.repeat(50));
      want.push(piece);
      w.append('stdout', piece);
    }
    await w.end();
    const b = new ReusedReadBuffers();
    const got: Buffer[] = [];
    for await (const c of readOutput(p, null, { bufferSize: 4096, buffers: b })) {
      if (c.kind !== 'data') continue;
      b.hold(c.data);
      got.push(Buffer.from(c.data)); // what grpc-js's frame copy does
      b.release(c.data);
    }
    assert.deepEqual(Buffer.concat(got), Buffer.concat(want));
    assert.ok(b.allocated <= 3, `${b.allocated} buffers for ${want.length} reads`);
  });
});
