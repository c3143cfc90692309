import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadJobExec } from '../../../../shared/proto/index.ts';
import type { GetOutStreamResponseIn } from '../../../../shared/proto/jobexec.ts';
import {
  encodeOutStreamResponse,
  withFastOutStream,
} from '../../../../daemons/cu-thor-server/wire.ts';

const def = loadJobExec().hostplane.jobexec.v1.JobExecutor.service;
const method = def.GetOutStream;
const generic = method.responseSerialize as (m: GetOutStreamResponseIn) => Buffer;
const decode = method.responseDeserialize as (b: Buffer) => unknown;

describe('encodeOutStreamResponse', () => {
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7) & 0xff));
  const cases: [string, GetOutStreamResponseIn][] = [
    ['stdout, small', { data: { stream: 'STREAM_STDOUT', data: Buffer.from('hello') } }],
    ['stderr, 200 bytes (2-byte length)', { data: { stream: 'STREAM_STDERR', data: bytes(200) } }],
    [
      'stdout, 300 KiB (3-byte lengths)',
      { data: { stream: 'STREAM_STDOUT', data: bytes(300 * 1024) } },
    ],
    ['1 MiB', { data: { stream: 'STREAM_STDERR', data: bytes(1024 * 1024) } }],
    ['empty data', { data: { stream: 'STREAM_STDOUT', data: Buffer.alloc(0) } }],
    ['numeric stream', { data: { stream: 2, data: Buffer.from('x') } }],
    ['unspecified stream', { data: { stream: 'STREAM_UNSPECIFIED', data: Buffer.from('y') } }],
    ['truncated', { truncated: {} }],
  ];
  for (const [name, msg] of cases) {
    it(`is byte-identical to the generic encoder: ${name}`, () => {
      const ours = Buffer.from(encodeOutStreamResponse(msg, generic));
      assert.deepEqual(ours, generic(msg));
      assert.deepEqual(decode(ours), decode(generic(msg)));
    });
  }

  it('hands what it does not know to the generic encoder', () => {
    let used = 0;
    const fallback = (m: GetOutStreamResponseIn) => {
      used++;
      return generic(m);
    };
    encodeOutStreamResponse({}, fallback);
    encodeOutStreamResponse({ data: { stream: 'STREAM_STDOUT', data: 'text' } }, fallback);
    assert.equal(used, 2);
  });

  it('reuses one scratch buffer: a result is only valid until the next call', () => {
    const a = encodeOutStreamResponse(
      { data: { stream: 'STREAM_STDOUT', data: Buffer.from('aaaa') } },
      generic,
    );
    const b = encodeOutStreamResponse(
      { data: { stream: 'STREAM_STDOUT', data: Buffer.from('bbbb') } },
      generic,
    );
    assert.equal(a.buffer, b.buffer);
  });

  it('is what withFastOutStream installs, leaving the other methods alone', () => {
    const fast = withFastOutStream(def);
    assert.notEqual(fast['GetOutStream']!.responseSerialize, method.responseSerialize);
    assert.equal(fast['ExecuteCommand']!.responseSerialize, def.ExecuteCommand.responseSerialize);
  });
});
