import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FrameTracker, serverFrame } from '../../../../shared/http/proxy.ts';

const binary = (n: number, fin = true): Buffer => {
  const f = serverFrame(0x2, Buffer.alloc(n, 7));
  if (!fin) f[0] = f[0]! & 0x7f;
  return f;
};

describe('FrameTracker', () => {
  const cases: { name: string; bytes: Buffer; want: { between: boolean; closing: boolean } }[] = [
    { name: 'nothing yet', bytes: Buffer.alloc(0), want: { between: true, closing: false } },
    {
      name: 'whole small frames',
      bytes: Buffer.concat([binary(5), binary(125)]),
      want: { between: true, closing: false },
    },
    {
      name: 'a whole 16-bit length frame',
      bytes: binary(300),
      want: { between: true, closing: false },
    },
    {
      name: 'a whole 64-bit length frame',
      bytes: binary(70_000),
      want: { between: true, closing: false },
    },
    {
      name: 'half a header',
      bytes: binary(300).subarray(0, 3),
      want: { between: false, closing: false },
    },
    {
      name: 'half a payload',
      bytes: binary(70_000).subarray(0, 40_000),
      want: { between: false, closing: false },
    },
    {
      name: 'a fragment without FIN',
      bytes: binary(10, false),
      want: { between: false, closing: false },
    },
    {
      name: 'a ping between fragments',
      bytes: Buffer.concat([binary(10, false), serverFrame(0x9, Buffer.alloc(0))]),
      want: { between: false, closing: false },
    },
    {
      name: 'the last fragment',
      bytes: Buffer.concat([binary(10, false), serverFrame(0x0, Buffer.alloc(3))]),
      want: { between: true, closing: false },
    },
    {
      name: 'a close frame',
      bytes: Buffer.concat([binary(1), serverFrame(0x8, Buffer.from([0x03, 0xe8]))]),
      want: { between: false, closing: true },
    },
  ];
  for (const c of cases) {
    it(`says where ${c.name} ends, whole or one byte at a time`, () => {
      for (const step of [c.bytes.length || 1, 1]) {
        const t = new FrameTracker();
        for (let i = 0; i < c.bytes.length; i += step) {
          t.feed(c.bytes, i, Math.min(step, c.bytes.length - i));
        }
        assert.deepEqual({ between: t.between, closing: t.closing }, c.want);
      }
    });
  }
});
