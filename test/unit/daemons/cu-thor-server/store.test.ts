import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryLogger } from '../../../../shared/log/index.ts';
import {
  decodeRecord,
  encodeRecord,
  JobStore,
  markLost,
  type JobRecord,
} from '../../../../daemons/cu-thor-server/store.ts';
import type { ExecutionInfo } from '../../../../daemons/cu-thor-server/types.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cu-thor-store-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function info(over: Partial<ExecutionInfo> = {}): ExecutionInfo {
  return {
    id: randomUUID(),
    command: 'echo',
    args: ['a b', 'ü'],
    owner: 'client1',
    status: 'exited',
    exitCode: 0,
    signal: null,
    reason: null,
    startedAt: new Date('2026-11-22T10:00:00.000Z'),
    endedAt: new Date('2026-11-22T10:00:01.500Z'),
    limits: { cpuPercent: 50, io: [{ device: '8:0', rbps: 1024 }] },
    usage: { cpuUsec: 1234, memoryPeakBytes: null },
    outputBytes: 12,
    outputTruncated: false,
    ...over,
  };
}

describe('record encoding', () => {
  it('round-trips every field, dates included', () => {
    const rec: JobRecord = {
      info: info(),
      host: { pid: 42, startTime: '1234', cgroup: 'x/jobs/y' },
    };
    const back = decodeRecord(encodeRecord(rec));
    assert.deepEqual(back, rec);
    assert.ok(back.info.startedAt instanceof Date);
  });

  it('refuses a record with an unknown status or a bad id', () => {
    const text = encodeRecord({ info: info(), host: null });
    assert.throws(() => decodeRecord(text.replace('"exited"', '"zombie"')));
    assert.throws(() => decodeRecord(text.replace(/"id": "[^"]+"/, '"id": "../etc"')));
  });
});

describe('JobStore', () => {
  it('replaces meta.json atomically and leaves no temporary file behind', async () => {
    const store = new JobStore(join(dir, 'a'), createMemoryLogger().log);
    await store.init();
    const i = info({ status: 'running', endedAt: null, exitCode: null });
    store.createJobDir(i.id);
    await store.save({ info: i, host: null });
    const ended = { ...i, status: 'exited' as const, exitCode: 3, endedAt: new Date() };
    await store.save({ info: ended, host: null });
    assert.deepEqual(await readdir(store.jobDir(i.id)), ['meta.json']);
    assert.equal(decodeRecord(await readFile(store.metaPath(i.id), 'utf8')).info.exitCode, 3);
  });

  it('applies saves of one job in call order even when not awaited', async () => {
    const store = new JobStore(join(dir, 'b'), createMemoryLogger().log);
    await store.init();
    const i = info();
    store.createJobDir(i.id);
    const saves: Promise<void>[] = [];
    for (let n = 0; n < 20; n++)
      saves.push(store.save({ info: { ...i, exitCode: n }, host: null }));
    await Promise.all(saves);
    assert.equal(decodeRecord(await readFile(store.metaPath(i.id), 'utf8')).info.exitCode, 19);
  });

  it('loads all jobs oldest first and skips unreadable metadata with a warning', async () => {
    const { log, records } = createMemoryLogger();
    const store = new JobStore(join(dir, 'c'), log);
    await store.init();
    const older = info({ startedAt: new Date('2026-01-01T00:00:00Z') });
    const newer = info({ startedAt: new Date('2026-02-01T00:00:00Z') });
    for (const i of [newer, older]) {
      store.createJobDir(i.id);
      await store.save({ info: i, host: null });
    }
    const broken = randomUUID();
    await mkdir(store.jobDir(broken));
    await writeFile(store.metaPath(broken), '{"version":1,');
    await mkdir(join(store.jobsDir, 'not-a-job'));
    const loaded = await store.loadAll();
    assert.deepEqual(
      loaded.map((r) => r.info.id),
      [older.id, newer.id],
    );
    assert.ok(records.some((r) => r['msg'] === 'skipping unreadable job metadata'));
  });

  it('a missing state directory loads as no jobs', async () => {
    const store = new JobStore(join(dir, 'never-created'), createMemoryLogger().log);
    assert.deepEqual(await store.loadAll(), []);
  });
});

describe('markLost', () => {
  it('turns a running job into lost, ended at the restart, with a reason', () => {
    const now = new Date('2026-11-22T12:00:00Z');
    const rec: JobRecord = {
      info: info({ status: 'running', endedAt: null, exitCode: null }),
      host: { pid: 1, startTime: null, cgroup: null },
    };
    const lost = markLost(rec, now);
    assert.equal(lost.info.status, 'lost');
    assert.deepEqual(lost.info.endedAt, now);
    assert.match(lost.info.reason ?? '', /restarted/);
    assert.equal(rec.info.status, 'running', 'the input is not modified');
  });

  it('leaves a finished job as it was', () => {
    const rec: JobRecord = { info: info(), host: null };
    assert.equal(markLost(rec, new Date()), rec);
  });
});
