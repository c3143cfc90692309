import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Channel,
  decodeFrame,
  encodeClose,
  encodeFrame,
  encodeResize,
  encodeStatus,
  parseResize,
  parseStatus,
} from '../../../../shared/stream/index.ts';

describe('v5.channel.k8s.io framing', () => {
  it('puts the channel byte before the payload and reads it back', () => {
    const msg = encodeFrame(Channel.stdout, 'hello');
    assert.deepEqual([...msg.subarray(0, 1)], [1]);
    const f = decodeFrame(msg);
    assert.equal(f.channel, Channel.stdout);
    assert.equal(f.data.toString(), 'hello');
  });

  it('rejects empty messages and unknown channels', () => {
    assert.throws(() => decodeFrame(Buffer.alloc(0)), /empty message/);
    assert.throws(() => decodeFrame(Buffer.from([7, 1])), /unknown channel 7/);
  });

  it('encodes resize as kubectl does and parses it back', () => {
    const msg = encodeResize({ cols: 120, rows: 40 });
    assert.equal(msg[0], 4);
    assert.equal(msg.subarray(1).toString(), '{"Width":120,"Height":40}');
    assert.deepEqual(parseResize(msg.subarray(1)), { cols: 120, rows: 40 });
    assert.throws(() => parseResize(Buffer.from('{"Width":0,"Height":3}')), /1\.\.65535/);
    assert.throws(() => parseResize(Buffer.from('nope')), /not JSON/);
  });

  it('carries exit codes through the status channel as metav1.Status', () => {
    for (const code of [0, 1, 42, 130]) {
      const msg = encodeStatus({ kind: 'exited', code });
      assert.equal(msg[0], 3);
      const status = JSON.parse(msg.subarray(1).toString()) as { status: string };
      assert.equal(status.status, code === 0 ? 'Success' : 'Failure');
      assert.deepEqual(parseStatus(msg.subarray(1)), { kind: 'exited', code });
    }
    const broken = encodeStatus({ kind: 'error', message: 'console gone' });
    assert.deepEqual(parseStatus(broken.subarray(1)), { kind: 'error', message: 'console gone' });
  });

  it('names the closed channel in a close message', () => {
    assert.deepEqual([...encodeClose(Channel.stdin)], [255, 0]);
  });
});
