import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  decodePageToken,
  encodePageToken,
  LIST_PAGE,
  listPage,
  pageSize,
} from '../../../../daemons/cu-thor-server/list.ts';
import {
  encodedExecutionBytes,
  executionToWire,
  REQUEST_BOUNDS,
} from '../../../../daemons/cu-thor-server/service.ts';
import type { ExecutionInfo } from '../../../../daemons/cu-thor-server/types.ts';

function info(startedMs: number, id = randomUUID(), args: string[] = []): ExecutionInfo {
  return {
    id,
    command: 'true',
    args,
    owner: 'client1',
    status: 'exited',
    exitCode: 0,
    signal: null,
    reason: null,
    startedAt: new Date(startedMs),
    endedAt: new Date(startedMs + 1),
    limits: {},
    usage: { cpuUsec: null, memoryPeakBytes: null },
    outputBytes: 0,
    outputTruncated: false,
  };
}

const bytes = encodedExecutionBytes();

/** Every page of `infos`, following the tokens as a client does. */
function allPages(infos: ExecutionInfo[], size: number, maxBytes?: number): string[][] {
  const pages: string[][] = [];
  let token = '';
  do {
    const after = token === '' ? null : decodePageToken(token);
    const p = listPage(infos, after, size, executionToWire, bytes, maxBytes);
    pages.push(p.executions.map((e) => e.id ?? ''));
    token = p.nextPageToken;
  } while (token !== '');
  return pages;
}

describe('ListAllExecutions pages', () => {
  it('a page token round-trips and is opaque base64url', () => {
    const key = { startedMs: 1_700_000_000_123, id: randomUUID() };
    const token = encodePageToken(key);
    assert.match(token, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodePageToken(token), key);
  });

  for (const [name, token] of [
    ['garbage', 'not a token!'],
    ['base64 of something else', Buffer.from('hello').toString('base64url')],
    ['an id that is not a UUID', Buffer.from('v1:12:abc').toString('base64url')],
    [
      'a time past the safe integers',
      Buffer.from(`v1:99999999999999999:${randomUUID()}`).toString('base64url'),
    ],
    ['a very long token', 'A'.repeat(4096)],
  ] as const) {
    it(`a page token that is ${name} is refused`, () => {
      assert.equal(decodePageToken(token), null);
    });
  }

  it('page_size absent or 0 is the default, above the maximum it is the maximum', () => {
    assert.equal(pageSize(undefined), LIST_PAGE.defaultSize);
    assert.equal(pageSize(0), LIST_PAGE.defaultSize);
    assert.equal(pageSize(7), 7);
    assert.equal(pageSize(1_000_000), LIST_PAGE.maxSize);
  });

  it('pages cut by count hold every entry once, by start time then id, the last without a token', () => {
    // three share one millisecond: the id decides among them
    const infos = [info(30), info(10), info(20), info(20), info(20), info(5)];
    const want = [...infos]
      .sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime() || (a.id < b.id ? -1 : 1))
      .map((i) => i.id);
    assert.deepEqual(allPages(infos, 2), [want.slice(0, 2), want.slice(2, 4), want.slice(4, 6)]);
    assert.deepEqual(allPages(infos, 6), [want]);
    assert.deepEqual(allPages(infos, 5), [want.slice(0, 5), want.slice(5)]);
  });

  it('an empty list is one empty page without a token', () => {
    assert.deepEqual(allPages([], 10), [[]]);
  });

  it('entries started after a page was handed out appear on a later page', () => {
    const infos = [info(1), info(2), info(3)];
    const first = listPage(infos, null, 2, executionToWire, bytes);
    infos.push(info(4));
    const second = listPage(infos, decodePageToken(first.nextPageToken), 2, executionToWire, bytes);
    assert.deepEqual(
      second.executions.map((e) => e.id),
      [infos[2]!.id, infos[3]!.id],
    );
    assert.equal(second.nextPageToken, '');
  });

  it('pages are cut by encoded bytes, yet hold at least one entry even when it alone is larger', () => {
    const big = 'y'.repeat(100 * 1024);
    const infos = Array.from({ length: 25 }, (_, i) => info(i, randomUUID(), [big]));
    const pages = allPages(infos, LIST_PAGE.maxSize);
    assert.deepEqual(
      pages.flat(),
      infos.map((i) => i.id),
    );
    assert.ok(pages.length >= 3, `${pages.length} pages`);
    for (const p of pages) assert.ok(p.length <= 10, `${p.length} entries of 100 KiB in a page`);
    // a limit below one entry: one entry per page, none left out
    assert.deepEqual(
      allPages(infos.slice(0, 3), 10, 1024),
      infos.slice(0, 3).map((i) => [i.id]),
    );
  });

  it('the largest execution a request can create fits a page with room to spare', () => {
    const e = info(1);
    // the command line at REQUEST_BOUNDS.totalBytes, every io device path at its maximum
    e.command = 'c'.repeat(REQUEST_BOUNDS.commandBytes - 1);
    e.args = ['a'.repeat(REQUEST_BOUNDS.totalBytes - REQUEST_BOUNDS.commandBytes - 1)];
    e.limits = {
      cpuPercent: 100,
      memoryMaxBytes: 2 ** 53 - 1,
      memoryHighBytes: 2 ** 53 - 1,
      pidsMax: 2 ** 31,
      io: Array.from({ length: REQUEST_BOUNDS.ioCount }, () => ({
        device: 'd'.repeat(REQUEST_BOUNDS.ioDeviceBytes),
        rbps: 2 ** 53 - 1,
        wbps: 2 ** 53 - 1,
      })),
    };
    e.reason = `starting ${JSON.stringify('\u0001'.repeat(REQUEST_BOUNDS.commandBytes))}: x`;
    e.owner = 'o'.repeat(1024);
    const n = bytes(executionToWire(e));
    assert.ok(n < LIST_PAGE.maxBytes / 2, `${n} bytes`);
  });
});
