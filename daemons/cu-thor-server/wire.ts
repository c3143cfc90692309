// GetOutStream's responses, encoded by hand into one reused scratch buffer.
//
// Why: an output stream is nearly all data messages, and the generic encoder allocates a fresh
// buffer per message that grpc-js then copies into its own framed buffer. grpc-js calls the
// serializer and copies its result in one synchronous step (serializeMessage: serialize, then
// `messageBuffer.copy(output, 5)`), so a scratch buffer reused across calls is safe and one of
// the two per-message allocations is gone: with 100 readers that is most of the garbage that
// held the server's RSS up between collections.
import type * as grpc from '@grpc/grpc-js';
import type { GetOutStreamResponseIn } from '../../shared/proto/jobexec.ts';

const STREAM_NUMBERS: Record<string, number> = {
  STREAM_UNSPECIFIED: 0,
  STREAM_STDOUT: 1,
  STREAM_STDERR: 2,
};

let scratch = Buffer.allocUnsafe(64 * 1024);

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

/**
 * Encodes `{ data: { stream, data } }` or `{ truncated: {} }` as protobuf; returns a view of the
 * scratch buffer, valid until the next call. Anything else goes to `fallback`.
 */
export function encodeOutStreamResponse(
  msg: GetOutStreamResponseIn,
  fallback: (msg: GetOutStreamResponseIn) => Buffer,
): Buffer {
  const d = msg.data;
  if (msg.truncated != null && d == null) return Buffer.from([0x12, 0x00]);
  if (d == null || msg.truncated != null) return fallback(msg);
  const stream = typeof d.stream === 'number' ? d.stream : STREAM_NUMBERS[d.stream ?? ''];
  const data = d.data;
  if (stream === undefined || !(data instanceof Uint8Array)) return fallback(msg);
  // OutputData: 0x08 stream, 0x12 len data (the set field is written even when 0, as protobufjs does)
  const inner = 1 + varintLength(stream) + 1 + varintLength(data.length) + data.length;
  const total = 1 + varintLength(inner) + inner;
  if (scratch.length < total) scratch = Buffer.allocUnsafe(Math.max(total, scratch.length * 2));
  let at = 0;
  scratch[at++] = 0x0a; // GetOutStreamResponse.data, length-delimited
  at = writeVarint(scratch, at, inner);
  scratch[at++] = 0x08; // OutputData.stream, varint
  at = writeVarint(scratch, at, stream);
  scratch[at++] = 0x12; // OutputData.data, length-delimited
  at = writeVarint(scratch, at, data.length);
  scratch.set(data, at);
  return scratch.subarray(0, at + data.length);
}

/** The service definition with GetOutStream's responses encoded by encodeOutStreamResponse. */
export function withFastOutStream(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const method = def['GetOutStream'];
  if (method === undefined) throw new Error('JobExecutor service definition has no GetOutStream');
  const generic = method.responseSerialize as (msg: GetOutStreamResponseIn) => Buffer;
  return {
    ...def,
    GetOutStream: {
      ...method,
      responseSerialize: (msg: GetOutStreamResponseIn) => encodeOutStreamResponse(msg, generic),
    },
  };
}
