// A job's output on disk: an append-only file of tagged records, written by one writer that never
// waits for readers, and read by any number of readers, each from byte 0 at its own pace.
//
// Record: 1 byte tag (1 stdout, 2 stderr, 3 truncated) + 4 bytes big-endian length + data.
import { closeSync, openSync, writev, writevSync, close as closeFd } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Logger } from '../../shared/log/index.ts';
import type { PageCache } from '../../shared/native/pagecache.ts';
import type { OutputChunk, ReadBuffers } from './types.ts';

export const TAG_STDOUT = 1;
export const TAG_STDERR = 2;
export const TAG_TRUNCATED = 3;
export const HEADER_BYTES = 5;
/** data longer than this is split into several records, so records stay small for readers. */
export const MAX_RECORD_DATA = 1 << 20;
/** data pieces at least this big are yielded in place; smaller ones are joined with neighbours. */
const ZERO_COPY_BYTES = 128 * 1024;
/** what one reader reads at a time: its memory bound. */
export const DEFAULT_READ_BUFFER = 256 * 1024;

export type StreamName = 'stdout' | 'stderr';

/** Encodes one record (used by tests and by the writer). */
export function encodeHeader(tag: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h[0] = tag;
  h.writeUInt32BE(length, 1);
  return h;
}

/** What a reader needs from a live writer: how much is safely on disk, and a way to wait for more. */
export interface LiveOutput {
  /** bytes of the file that hold complete records. */
  readonly committed: number;
  /** true once nothing more will ever be appended. */
  readonly ended: boolean;
  /** resolves when committed > position, or the output ended, or `signal` aborted. */
  waitBeyond(position: number, signal?: AbortSignal): Promise<void>;
}

export interface OutputWriterOptions {
  /** data bytes kept; past it a truncated record is written and further data dropped. */
  maxBytes: number;
  log: Logger;
  /** pause producers above this many queued bytes (default 8 MiB). */
  highWaterBytes?: number;
  /** write on the main thread, batched once per event-loop turn (default) instead of through the
   * libuv pool, where busy readers would queue ahead of the writer. */
  syncWrites?: boolean;
  /**
   * Drops written output from the page cache behind the writer, keeping the last
   * `cacheKeepBytes` (default 32 MiB) cached for live readers. A job printing gigabytes then
   * neither evicts the host's useful cache nor makes every write pay for a new page (measured on
   * our VMs: 0.25 s per GB written with dropping, 2.5 s without once a few GB are cached).
   * Readers further behind read from disk. Null or absent: pages stay cached.
   */
  pageCache?: PageCache | null;
  cacheKeepBytes?: number;
}

/** the least that is worth one flush-and-drop call */
const DROP_STEP_BYTES = 16 * 1024 * 1024;
const PAGE = 4096;

/**
 * The single writer of one job's output file. Appends are queued and written with writev, one
 * write in flight at a time; readers are woken after each completed write.
 */
export class OutputWriter implements LiveOutput {
  readonly path: string;
  /** data bytes kept (not counting headers). */
  dataBytes = 0;
  truncated = false;
  committed = 0;
  ended = false;
  /** set when a write failed; the rest of the output is dropped. */
  error: Error | null = null;
  /** called with true when unwritten data piles up (pause the producers), false when drained. */
  onPressure: ((paused: boolean) => void) | null = null;

  readonly #fd: number;
  readonly #opts: OutputWriterOptions;
  readonly #high: number;
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #writing = false;
  #paused = false;
  #ending = false;
  #closed: Promise<void> | null = null;
  #flushedWaiters: (() => void)[] = [];
  #waiters = new Set<() => void>();
  readonly #keep: number;
  /** bytes from 0 already dropped from the page cache */
  #dropped = 0;
  /** set while a flush-and-drop runs in the pool: the file must not be closed under it */
  #dropping: Promise<void> | null = null;
  #pageCache: PageCache | null;

  private constructor(path: string, fd: number, opts: OutputWriterOptions) {
    this.path = path;
    this.#fd = fd;
    this.#opts = opts;
    this.#high = opts.highWaterBytes ?? 8 * 1024 * 1024;
    this.#keep = opts.cacheKeepBytes ?? 32 * 1024 * 1024;
    this.#pageCache = opts.pageCache ?? null;
  }

  /** Creates (truncating) the output file. Synchronous: it is on the job start path. */
  static create(path: string, opts: OutputWriterOptions): OutputWriter {
    let fd: number;
    try {
      fd = openSync(path, 'w', 0o600);
    } catch (cause) {
      throw new Error(`creating output file ${path}: ${(cause as Error).message}`, { cause });
    }
    return new OutputWriter(path, fd, opts);
  }

  /** Appends data of one stream; never blocks. Past the cap, data is dropped. */
  append(stream: StreamName, data: Buffer): void {
    if (this.#ending || this.truncated || this.error !== null || data.length === 0) return;
    const room = this.#opts.maxBytes - this.dataBytes;
    let keep = data;
    let overflow = false;
    if (data.length > room) {
      keep = data.subarray(0, Math.max(0, room));
      overflow = true;
    }
    const tag = stream === 'stdout' ? TAG_STDOUT : TAG_STDERR;
    for (let off = 0; off < keep.length; off += MAX_RECORD_DATA) {
      const part = keep.subarray(off, off + MAX_RECORD_DATA);
      this.#push(encodeHeader(tag, part.length));
      this.#push(part);
    }
    this.dataBytes += keep.length;
    if (overflow) {
      this.truncated = true;
      this.#push(encodeHeader(TAG_TRUNCATED, 0));
    }
    this.#kick();
  }

  /** Flushes everything queued, closes the file and wakes readers for the last time. */
  end(): Promise<void> {
    if (this.#closed !== null) return this.#closed;
    this.#ending = true;
    this.#closed = new Promise<void>((resolve) => {
      const finish = () => {
        void (async () => {
          // a drop that ends may start the next one (see #written): wait for the last
          while (this.#dropping !== null) await this.#dropping;
          closeFd(this.#fd, () => {
            this.ended = true;
            this.#wake();
            resolve();
          });
        })();
      };
      if (!this.#writing && this.#queue.length === 0) finish();
      else this.#flushedWaiters.push(finish);
    });
    return this.#closed;
  }

  /** Closes the file at once without flushing (for a failed start). */
  abandon(): void {
    if (this.#closed !== null) return;
    this.#ending = true;
    this.#queue = [];
    const fd = this.#fd;
    if (this.#dropping === null) closeSync(fd);
    else
      void this.#dropping.then(() => {
        closeSync(fd);
      });
    this.ended = true;
    this.#closed = Promise.resolve();
    this.#wake();
  }

  waitBeyond(position: number, signal?: AbortSignal): Promise<void> {
    if (this.committed > position || this.ended || signal?.aborted === true) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  #push(b: Buffer): void {
    this.#queue.push(b);
    this.#queuedBytes += b.length;
  }

  /** Counts written bytes; drops what lies far enough behind from the page cache. */
  #written(bytes: number): void {
    this.committed += bytes;
    const pc = this.#pageCache;
    if (pc === null || this.#dropping !== null) return;
    const upTo = Math.floor((this.committed - this.#keep) / PAGE) * PAGE;
    if (upTo - this.#dropped < DROP_STEP_BYTES) return;
    const from = this.#dropped;
    this.#dropped = upTo;
    this.#dropping = pc
      .dropBehind(this.#fd, from, upTo - from)
      .catch((err: unknown) => {
        // nothing is lost (the data is written or still cached); stop trying for this file
        this.#pageCache = null;
        this.#opts.log.warn(
          { err: (err as Error).message, path: this.path },
          'dropping job output from the page cache failed; keeping it cached',
        );
      })
      .finally(() => {
        this.#dropping = null;
        // what was written while this drop waited for writeback (slow exactly when the disk is
        // busy) is due now: without this, a burst that ends during a drop stays cached
        this.#written(0);
      });
  }

  #wake(): void {
    const ws = [...this.#waiters];
    this.#waiters.clear();
    for (const w of ws) w();
  }

  #pressure(paused: boolean): void {
    if (paused === this.#paused) return;
    this.#paused = paused;
    this.onPressure?.(paused);
  }

  #kick(): void {
    if (this.#queuedBytes > this.#high) this.#pressure(true);
    if (this.#writing || this.#queue.length === 0) return;
    if (this.#opts.syncWrites !== false) {
      this.#writing = true;
      setImmediate(() => {
        this.#writeSync();
      });
      return;
    }
    // IOV_MAX is 1024 on Linux.
    const batch = this.#queue.splice(0, 1024);
    let bytes = 0;
    for (const b of batch) bytes += b.length;
    this.#writing = true;
    writev(this.#fd, batch, (err, written) => {
      this.#writing = false;
      if (err !== null) {
        this.#fail(err);
      } else if (written < bytes) {
        // A short write (disk full or similar): keep the rest at the head of the queue and try
        // again; a real error then comes back on the next write. Readers cope with a committed
        // offset inside a record (they carry partial records over).
        let skip = written;
        const rest: Buffer[] = [];
        for (const b of batch) {
          if (skip >= b.length) skip -= b.length;
          else {
            rest.push(skip > 0 ? b.subarray(skip) : b);
            skip = 0;
          }
        }
        this.#queue.unshift(...rest);
        this.#queuedBytes -= written;
        this.#written(written);
      } else {
        this.#queuedBytes -= bytes;
        this.#written(bytes);
      }
      this.#wake();
      if (this.#queuedBytes < this.#high / 4) this.#pressure(false);
      if (this.#queue.length > 0 && this.error === null) this.#kick();
      else this.#flushed();
    });
  }

  // Everything queued during this event-loop turn goes out in as few writev calls as possible.
  #writeSync(): void {
    this.#writing = false;
    while (this.#queue.length > 0 && this.error === null) {
      const batch = this.#queue.splice(0, 1024); // IOV_MAX
      let bytes = 0;
      for (const b of batch) bytes += b.length;
      let written: number;
      try {
        written = writevSync(this.#fd, batch);
      } catch (err) {
        this.#fail(err as Error);
        break;
      }
      this.#queuedBytes -= written;
      this.#written(written);
      if (written === 0 && bytes > 0) {
        this.#fail(new Error('no progress writing (disk full?)'));
        break;
      }
      if (written < bytes) {
        // a short write (disk full or similar): retry the rest; a real error comes next time
        let skip = written;
        const rest: Buffer[] = [];
        for (const b of batch) {
          if (skip >= b.length) skip -= b.length;
          else {
            rest.push(skip > 0 ? b.subarray(skip) : b);
            skip = 0;
          }
        }
        this.#queue.unshift(...rest);
      }
    }
    this.#wake();
    this.#flushed();
  }

  #fail(err: Error): void {
    this.error = new Error(`writing output file ${this.path}: ${err.message}`, { cause: err });
    this.#opts.log.error({ err: this.error, path: this.path }, 'output write failed');
    this.#queue = [];
    this.#queuedBytes = 0;
    this.truncated = true;
  }

  #flushed(): void {
    if (this.#queue.length > 0) return;
    this.#pressure(false);
    const ws = this.#flushedWaiters;
    this.#flushedWaiters = [];
    for (const w of ws) w();
  }
}

// a function, so that TypeScript does not narrow `aborted` across awaits and yields
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

export interface ReadOutputOptions {
  signal?: AbortSignal;
  /** bytes read at a time (default 256 KiB), the reader's memory bound; a function is asked
   * before every read, so a server can shrink readers as more of them open. */
  bufferSize?: number | (() => number);
  /** where read buffers come from (default: a new one per read) */
  buffers?: ReadBuffers;
}

/**
 * Read buffers of one output stream, reused once every chunk cut from them has been sent.
 * `hold` and `release` bracket each send of a chunk; a buffer goes back to the free list when the
 * reader has moved on to the next one and nothing cut from it is still being sent. Buffers whose
 * sends never complete (a cancelled call) are simply left to the garbage collector.
 */
export class ReusedReadBuffers implements ReadBuffers {
  readonly #free: ArrayBuffer[] = [];
  /** sends in flight per buffer still in use */
  readonly #refs = new Map<ArrayBufferLike, number>();
  #current: ArrayBuffer | null = null;
  /** how many buffers were allocated (tests, figures) */
  allocated = 0;

  take(size: number): Buffer {
    const previous = this.#current;
    this.#current = null;
    if (previous !== null && (this.#refs.get(previous) ?? 0) === 0) this.#recycle(previous);
    let ab: ArrayBuffer | undefined;
    while (ab === undefined && this.#free.length > 0) {
      const f = this.#free.pop()!;
      if (f.byteLength >= size) ab = f;
    }
    if (ab === undefined) {
      ab = new ArrayBuffer(size);
      this.allocated++;
    }
    this.#current = ab;
    return Buffer.from(ab, 0, size);
  }

  hold(view: Uint8Array): void {
    this.#refs.set(view.buffer, (this.#refs.get(view.buffer) ?? 0) + 1);
  }

  release(view: Uint8Array): void {
    const ab = view.buffer;
    const n = (this.#refs.get(ab) ?? 1) - 1;
    if (n > 0) {
      this.#refs.set(ab, n);
      return;
    }
    this.#refs.delete(ab);
    if (ab !== this.#current && ab instanceof ArrayBuffer) this.#recycle(ab);
  }

  #recycle(ab: ArrayBuffer): void {
    if (this.#free.length < 4 && !this.#free.includes(ab)) this.#free.push(ab);
  }
}

/**
 * Reads an output file from byte 0. With `live`, follows appends until the writer ended and the
 * file is drained; without, reads to the end of the file. Adjacent data of the same stream is
 * yielded as one chunk. Returns quietly when `signal` aborts.
 */
export async function* readOutput(
  path: string,
  live: LiveOutput | null,
  opts: ReadOutputOptions = {},
): AsyncGenerator<OutputChunk, void, undefined> {
  const size = opts.bufferSize ?? DEFAULT_READ_BUFFER;
  // at least a few headers, so that a read that finds no whole header means the end of data
  const bufferBytes = (): number => Math.max(16, typeof size === 'function' ? size() : size);
  const signal = opts.signal;
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (cause) {
    throw new Error(`opening output file ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    let pos = 0;
    let stream: StreamName = 'stdout';
    let remaining = 0; // data bytes of the current record not read yet
    for (;;) {
      if (isAborted(signal)) return;
      const bufferSize = bufferBytes();
      let want = bufferSize;
      if (live !== null) {
        const ended = live.ended;
        const limit = live.committed;
        if (pos >= limit) {
          if (ended) return;
          await live.waitBeyond(pos, signal);
          continue;
        }
        want = Math.min(bufferSize, limit - pos);
      }
      const buf = opts.buffers?.take(want) ?? Buffer.allocUnsafe(want);
      const { bytesRead: n } = await fh.read(buf, 0, want, pos);
      if (n === 0) {
        if (live === null || live.ended) return;
        // committed said there was more: the file was replaced under us; stop rather than spin.
        throw new Error(`reading output file ${path}: unexpected end at offset ${pos}`);
      }
      // Parse records, compacting data in place (dropping headers) so that runs of one stream
      // become one contiguous slice of `buf`.
      const chunks: OutputChunk[] = [];
      let runStart = 0;
      let out = 0;
      let runStream: StreamName | null = null;
      const closeRun = () => {
        if (runStream !== null && out > runStart) {
          chunks.push({ kind: 'data', stream: runStream, data: buf.subarray(runStart, out) });
        }
        runStart = out;
        runStream = null;
      };
      let i = 0;
      while (i < n) {
        if (remaining > 0) {
          const take = Math.min(remaining, n - i);
          if (take >= ZERO_COPY_BYTES) {
            // big enough alone: hand out the slice where it lies instead of moving it
            closeRun();
            chunks.push({ kind: 'data', stream, data: buf.subarray(i, i + take) });
            out = runStart = i + take;
            i += take;
            remaining -= take;
            continue;
          }
          if (runStream !== stream) {
            closeRun();
            runStream = stream;
          }
          if (out !== i) buf.copy(buf, out, i, i + take);
          out += take;
          i += take;
          remaining -= take;
          continue;
        }
        if (n - i < HEADER_BYTES) break; // a header split across reads: read it again next time
        const tag = buf[i]!;
        const len = buf.readUInt32BE(i + 1);
        if (tag === TAG_STDOUT || tag === TAG_STDERR) {
          stream = tag === TAG_STDOUT ? 'stdout' : 'stderr';
          remaining = len;
        } else if (tag === TAG_TRUNCATED) {
          closeRun();
          chunks.push({ kind: 'truncated' });
        } else {
          throw new Error(
            `reading output file ${path}: bad record tag ${tag} at offset ${pos + i}`,
          );
        }
        i += HEADER_BYTES;
      }
      closeRun();
      if (i === 0) {
        // only a torn header is available: wait for the rest of it (or stop at a torn end)
        if (live === null || live.ended) return;
        await live.waitBeyond(pos + n, signal);
        continue;
      }
      pos += i;
      for (const c of chunks) {
        yield c;
        if (isAborted(signal)) return;
      }
    }
  } finally {
    await fh.close();
  }
}
