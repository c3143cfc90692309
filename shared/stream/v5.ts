// The exec stream protocol: WebSocket messages in the `v5.channel.k8s.io` framing, as kubectl and
// the Kubernetes apiserver speak it. Every binary message starts with one channel byte; the rest is
// the payload. Status carries a metav1.Status as JSON; resize carries {"Width":W,"Height":H}; a
// close message carries the number of the channel its sender will not write to again.

/** The WebSocket subprotocol every hop offers and accepts. */
export const V5_PROTOCOL = 'v5.channel.k8s.io';

/** Channel numbers of the v5 framing. */
export const Channel = {
  stdin: 0,
  stdout: 1,
  stderr: 2,
  status: 3,
  resize: 4,
  close: 255,
} as const;
export type ChannelNumber = (typeof Channel)[keyof typeof Channel];

const KNOWN = new Set<number>(Object.values(Channel));

/** One decoded message. */
export interface Frame {
  channel: ChannelNumber;
  data: Buffer;
}

/** Encodes `data` on `channel` as one WebSocket message payload. */
export function encodeFrame(
  channel: ChannelNumber,
  data: Buffer | string = Buffer.alloc(0),
): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = channel;
  body.copy(out, 1);
  return out;
}

/** Decodes one message payload; throws on an empty message or an unknown channel. */
export function decodeFrame(msg: Buffer): Frame {
  if (msg.length === 0) throw new Error('decoding v5 frame: empty message has no channel byte');
  const channel = msg[0]!;
  if (!KNOWN.has(channel)) throw new Error(`decoding v5 frame: unknown channel ${channel}`);
  return { channel: channel as ChannelNumber, data: msg.subarray(1) };
}

/** A terminal size. */
export interface TermSize {
  cols: number;
  rows: number;
}

/** The resize payload kubectl sends: `{"Width":cols,"Height":rows}`. */
export function encodeResize(size: TermSize): Buffer {
  return encodeFrame(Channel.resize, JSON.stringify({ Width: size.cols, Height: size.rows }));
}

/** Parses a resize payload; throws unless both are integers in 1..65535. */
export function parseResize(data: Buffer): TermSize {
  let v: unknown;
  try {
    v = JSON.parse(data.toString('utf8'));
  } catch (cause) {
    throw new Error('parsing v5 resize message: not JSON', { cause });
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const ok = (n: unknown): n is number =>
    typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
  if (!ok(o['Width']) || !ok(o['Height'])) {
    throw new Error('parsing v5 resize message: Width and Height must be integers in 1..65535');
  }
  return { cols: o['Width'], rows: o['Height'] };
}

/** The close message: its sender will not write to `channel` again (stdin EOF is `close(0)`). */
export function encodeClose(channel: ChannelNumber): Buffer {
  return encodeFrame(Channel.close, Buffer.from([channel]));
}

/** How a session ended, as the status channel reports it. */
export type ExitStatus = { kind: 'exited'; code: number } | { kind: 'error'; message: string };

/**
 * The metav1.Status kubectl expects on channel 3: Success for exit 0; Failure with reason
 * NonZeroExitCode and an ExitCode cause otherwise; InternalError for a session that broke.
 */
export function encodeStatus(s: ExitStatus): Buffer {
  let status: object;
  if (s.kind === 'exited' && s.code === 0) {
    status = { metadata: {}, status: 'Success' };
  } else if (s.kind === 'exited') {
    status = {
      metadata: {},
      status: 'Failure',
      message: `command terminated with non-zero exit code: ${s.code}`,
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: String(s.code) }] },
    };
  } else {
    status = { metadata: {}, status: 'Failure', message: s.message, reason: 'InternalError' };
  }
  return encodeFrame(Channel.status, JSON.stringify(status));
}

/** Reads a status payload back into an ExitStatus (what the CLI exits with). */
export function parseStatus(data: Buffer): ExitStatus {
  let v: unknown;
  try {
    v = JSON.parse(data.toString('utf8'));
  } catch (cause) {
    throw new Error('parsing v5 status message: not JSON', { cause });
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as {
    status?: unknown;
    reason?: unknown;
    message?: unknown;
    details?: { causes?: { reason?: unknown; message?: unknown }[] };
  };
  if (o.status === 'Success') return { kind: 'exited', code: 0 };
  if (o.reason === 'NonZeroExitCode') {
    const cause = o.details?.causes?.find((c) => c.reason === 'ExitCode');
    const code = Number(cause?.message);
    if (Number.isInteger(code)) return { kind: 'exited', code };
  }
  return {
    kind: 'error',
    message: typeof o.message === 'string' ? o.message : 'session failed without a message',
  };
}
