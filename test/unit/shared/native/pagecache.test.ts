// The page-cache addon for real: built from shared/native/pagecache.c, loaded, and checked with
// util-linux's fincore (which counts a file's pages resident in the page cache).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { OutputWriter } from '../../../../daemons/cu-thor-server/output.ts';
import { createRunner, findBinary } from '../../../../shared/exec/index.ts';
import type { Runner } from '../../../../shared/exec/types.ts';
import { silentLogger } from '../../../../shared/log/index.ts';
import {
  DEV_PAGECACHE,
  ensurePageCache,
  loadPageCache,
  type PageCache,
} from '../../../../shared/native/pagecache.ts';

const MiB = 1024 * 1024;
const tools = await Promise.all(
  ['gcc', 'fincore'].map((b) => findBinary(b).catch(() => undefined)),
);
const skip = tools.includes(undefined) ? 'needs gcc and fincore' : false;

describe('the page-cache addon', { skip }, () => {
  let dir: string;
  let runner: Runner;
  let pc: PageCache;

  /** bytes of `file` in the page cache */
  const resident = async (file: string): Promise<number> =>
    Number(
      (
        await runner.run([tools[1]!, '--bytes', '--noheadings', '--output', 'RES', file])
      ).stdout.trim(),
    );

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hostplane-pagecache-'));
    runner = createRunner({ log: silentLogger(), allow: tools as string[] });
    await ensurePageCache(runner);
    const loaded = loadPageCache({ HOSTPLANE_PAGECACHE: DEV_PAGECACHE });
    assert.ok(loaded !== null);
    pc = loaded;
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes out a dirty range and drops it from the cache', async () => {
    const file = path.join(dir, 'plain');
    const fd = openSync(file, 'w');
    try {
      writeSync(fd, Buffer.alloc(8 * MiB, 7));
      assert.equal(await resident(file), 8 * MiB, 'freshly written pages are cached');
      await pc.dropBehind(fd, 0, 6 * MiB);
      assert.equal(await resident(file), 2 * MiB, 'only the range not dropped is left');
    } finally {
      closeSync(fd);
    }
  });

  it('says which call failed and on what', async () => {
    await assert.rejects(pc.dropBehind(1_000_000, 0, 4096), (err: Error & { code?: string }) => {
      assert.match(
        err.message,
        /dropping pages of fd 1000000: sync_file_range: Bad file descriptor/,
      );
      assert.equal(err.code, 'sync_file_range');
      return true;
    });
  });

  /** MiB of `name` still cached after an OutputWriter with `pageCache` wrote 128 MiB to it. */
  async function cachedAfterWriting(name: string, pageCache: PageCache): Promise<number> {
    const file = path.join(dir, name);
    const w = OutputWriter.create(file, { maxBytes: 1024 * MiB, log: silentLogger(), pageCache });
    for (let i = 0; i < 128; i++) {
      w.append('stdout', Buffer.alloc(MiB, i & 0xff));
      await new Promise((r) => setImmediate(r));
    }
    await w.end();
    return (await resident(file)) / MiB;
  }

  it('keeps a job output writer to its window of cached pages', async () => {
    const cached = await cachedAfterWriting('output', pc);
    assert.ok(
      cached <= 32 + 16 + 1,
      `at most the kept 32 MiB plus one step of 16 MiB stay cached, not ${cached} MiB`,
    );
  });

  it('keeps the window when writeback is slow: what was written during a drop is dropped after it', async () => {
    // a disk slow to write back: each drop takes 200 ms, while the writer goes on
    const slow: PageCache = {
      path: pc.path,
      dropBehind: async (fd, offset, length) => {
        await new Promise((r) => setTimeout(r, 200));
        await pc.dropBehind(fd, offset, length);
      },
    };
    const cached = await cachedAfterWriting('output-slow', slow);
    assert.ok(
      cached <= 32 + 16 + 1,
      `at most the kept 32 MiB plus one step of 16 MiB stay cached, not ${cached} MiB`,
    );
  });

  it('refuses a named addon that does not load, saying which', () => {
    assert.throws(
      () => loadPageCache({ HOSTPLANE_PAGECACHE: path.join(dir, 'missing.node') }),
      /loading the page-cache addon .*missing\.node/,
    );
  });
});
