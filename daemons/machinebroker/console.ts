// Local consoles behind a token URL: a sandboxed shell (under a PTY, or on plain pipes without a
// TTY) and a VM serial console on a unix socket; and the bridge that carries one of them over a
// v5.channel.k8s.io WebSocket.
import net from 'node:net';
import type { Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Runner } from '../../shared/exec/types.ts';
import type { Logger } from '../../shared/log/index.ts';
import { isolatedArgv, PRIVATE_TMP_BYTES } from '../../shared/ns/index.ts';
import { startSandboxPty } from '../../shared/pty/index.ts';
import {
  Channel,
  decodeFrame,
  encodeFrame,
  encodeStatus,
  parseResize,
  type ExitStatus,
  type TermSize,
} from '../../shared/stream/index.ts';
import { inputGate } from '../../shared/stream/input.ts';

/** A running console, whatever is behind it. */
export interface Console {
  /** registers the receiver of output (channel 1 stdout or 2 stderr); call once, before input */
  onOutput(fn: (channel: 1 | 2, data: Buffer) => void): void;
  /** false when the console's input buffer is full: send no more until onceInputDrained */
  write(data: Buffer): boolean;
  /** calls `fn` once (asynchronously) when the console has taken its buffered input, or can no
   * longer take any (it ended) */
  onceInputDrained(fn: () => void): void;
  /** stdin EOF */
  endInput(): void;
  resize(size: TermSize): void;
  /** stop reading output (the client is slow) until resume() */
  pause(): void;
  resume(): void;
  /** how the console ended; never rejects */
  readonly done: Promise<ExitStatus>;
  /** ends the console now (the client went away) */
  kill(): void;
}

export interface SandboxDeps {
  runner: Runner;
  /** absolute paths of util-linux unshare and hostplane-nsinit */
  unshare: string;
  nsinit: string;
  /** util-linux setsid: gives a TTY sandbox its own session with the PTY as controlling terminal */
  setsid: string;
  term: string;
}

const SANDBOX_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/', LC_ALL: 'C.UTF-8' };

/**
 * The argv of a pipes sandbox: `command` in new PID, mount and network namespaces with a private
 * /tmp, /var/tmp and /dev/shm (shared/ns), as the TTY sandbox (shared/pty).
 */
export function sandboxArgv(deps: SandboxDeps, command: readonly string[]): string[] {
  return isolatedArgv({
    unshare: deps.unshare,
    init: deps.nsinit,
    pid: true,
    mount: true,
    net: true,
    privateTmpBytes: PRIVATE_TMP_BYTES,
    command: command[0]!,
    args: command.slice(1),
  });
}

/** A sandbox under a PTY (shared/pty); resolves once its namespace runs. */
export async function openSandboxPty(
  deps: SandboxDeps,
  command: readonly string[],
  size: TermSize,
  log: Logger,
): Promise<Console> {
  const p = await startSandboxPty(deps, { command, size, env: SANDBOX_ENV, log });
  return {
    onOutput(fn) {
      p.onData((d) => {
        fn(1, d);
      });
    },
    write: (data) => p.write(data),
    onceInputDrained: (fn) => {
      p.onceDrained(fn);
    },
    endInput() {
      // a terminal has no EOF of its own: the line discipline turns ^D into one
      p.write('\x04');
    },
    resize: (s) => {
      p.resize(s);
    },
    pause: () => {
      p.pause();
    },
    resume: () => {
      p.resume();
    },
    done: p.done,
    kill() {
      void p.kill();
    },
  };
}

/** A sandbox on plain pipes (no TTY): stdout and stderr stay apart, stdin EOF is real. */
export function openSandboxPipes(
  deps: SandboxDeps,
  command: readonly string[],
  log: Logger,
): Console {
  const argv = sandboxArgv(deps, command);
  const child = deps.runner.spawn(argv, { env: SANDBOX_ENV });
  log.info({ argv, pid: child.pid, tty: false }, 'sandbox started');
  const stdin = child.stdin!;
  stdin.on('error', () => undefined); // EPIPE after the command exited: nothing to tell anyone
  const streams = [child.stdout!, child.stderr!] as const;
  const outputsDone = Promise.all(
    streams.map((s) => new Promise<void>((resolve) => s.once('close', resolve))),
  );
  const done = (async (): Promise<ExitStatus> => {
    const { code, signal } = await child.exited;
    await outputsDone;
    log.info({ pid: child.pid, code, signal }, 'sandbox ended');
    if (code !== null) return { kind: 'exited', code };
    return { kind: 'exited', code: 128 + (signal === null ? 0 : signalNumber(signal)) };
  })();
  let ended = false;
  void done.then(() => (ended = true));
  return {
    onOutput(fn) {
      streams[0].on('data', (d: Buffer) => {
        fn(1, d);
      });
      streams[1].on('data', (d: Buffer) => {
        fn(2, d);
      });
    },
    write(data) {
      // a closed stdin takes nothing more: dropped, as the command would have ignored it
      if (stdin.writableEnded || stdin.destroyed) return true;
      return stdin.write(data);
    },
    onceInputDrained: (fn) => {
      onceWritable(stdin, fn);
    },
    endInput() {
      if (!stdin.writableEnded) stdin.end();
    },
    resize() {
      // no terminal, nothing to size
    },
    pause: () => {
      streams.forEach((s) => s.pause());
    },
    resume: () => {
      streams.forEach((s) => s.resume());
    },
    done,
    kill() {
      if (!ended) child.kill('SIGKILL');
    },
  };
}

/** Calls `fn` once when `w` has drained its buffer or can no longer be written to. */
function onceWritable(w: Writable, fn: () => void): void {
  if (!w.writableNeedDrain || w.writableEnded || w.destroyed) {
    setImmediate(fn);
    return;
  }
  const done = (): void => {
    w.off('drain', done);
    w.off('close', done);
    fn();
  };
  w.on('drain', done);
  w.on('close', done);
}

function signalNumber(sig: NodeJS.Signals): number {
  return (
    (
      {
        SIGHUP: 1,
        SIGINT: 2,
        SIGQUIT: 3,
        SIGKILL: 9,
        SIGPIPE: 13,
        SIGTERM: 15,
      } as Partial<Record<NodeJS.Signals, number>>
    )[sig] ?? 0
  );
}

/** A serial console on a unix socket (already connected: see connectSerial). */
export function serialConsole(sock: net.Socket, path: string, log: Logger): Console {
  const done = new Promise<ExitStatus>((resolve) => {
    sock.once('close', () => {
      log.info({ socket: path }, 'serial console closed');
      resolve({ kind: 'error', message: `serial console ${path} closed` });
    });
  });
  sock.on('error', (err) => {
    log.warn({ socket: path, err: err.message }, 'serial console error');
  });
  return {
    onOutput(fn) {
      sock.on('data', (d: Buffer) => {
        fn(1, d);
      });
    },
    write(data) {
      if (!sock.writable) return true;
      return sock.write(data);
    },
    onceInputDrained: (fn) => {
      onceWritable(sock, fn);
    },
    endInput() {
      // a serial line has no EOF: the session lasts until the client leaves
    },
    resize() {
      // a serial line has no size
    },
    pause: () => sock.pause(),
    resume: () => sock.resume(),
    done,
    kill: () => sock.destroy(),
  };
}

/** Connects to a serial console's unix socket. */
export function connectSerial(path: string, timeoutMs = 5_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`connecting to serial console ${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      resolve(sock);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new Error(`connecting to serial console ${path}: ${err.code ?? err.message}`, {
          cause: err,
        }),
      );
    });
  });
}

const HIGH_WATER = 1 << 20;
const LOW_WATER = 1 << 18;

/** How long a bridge stopped by its owner waits for the client to answer its close frame. */
const STOP_CLOSE_MS = 1_000;

/**
 * Carries `con` over `ws` until either ends: input frames to the console, output to frames with
 * backpressure, then the exit status on channel 3 and a normal close. A client that leaves kills
 * the console. `stop` aborted (the daemon is stopping): the client gets an InternalError status
 * saying `stop.reason` and a 1001 close, and the console is killed. Resolves with the console's
 * status once it has ended.
 */
export function bridge(
  ws: WebSocket,
  con: Console,
  log: Logger,
  stop?: AbortSignal,
): Promise<ExitStatus> {
  let paused = false;
  const input = inputGate(ws);
  con.onOutput((channel, data) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(encodeFrame(channel, data), (err) => {
      // ws passes null, not undefined, on success
      if (!(err instanceof Error) && paused && ws.bufferedAmount < LOW_WATER) {
        paused = false;
        con.resume();
      }
    });
    if (!paused && ws.bufferedAmount > HIGH_WATER) {
      paused = true;
      con.pause();
    }
  });
  ws.on('message', (msg: Buffer, isBinary: boolean) => {
    let frame;
    try {
      frame = decodeFrame(isBinary ? msg : Buffer.from(msg));
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'dropping malformed exec message');
      return;
    }
    switch (frame.channel) {
      case Channel.stdin:
        if (!con.write(frame.data)) {
          input.pause((fn) => {
            con.onceInputDrained(fn);
          });
        }
        break;
      case Channel.resize:
        try {
          con.resize(parseResize(frame.data));
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'dropping malformed resize');
        }
        break;
      case Channel.close:
        if (frame.data[0] === Channel.stdin) con.endInput();
        break;
      case Channel.stdout:
      case Channel.stderr:
      case Channel.status:
        break;
    }
  });
  ws.on('error', (err) => {
    log.debug({ err: err.message }, 'exec websocket error');
  });
  ws.once('close', () => {
    input.close();
    con.kill();
  });
  const onStop = (): void => {
    if (ws.readyState === ws.OPEN) {
      ws.send(encodeStatus({ kind: 'error', message: String(stop?.reason) }));
      ws.close(1001);
    }
    con.kill();
  };
  if (stop?.aborted === true) onStop();
  else stop?.addEventListener('abort', onStop, { once: true });
  return con.done.then(async (status) => {
    stop?.removeEventListener('abort', onStop);
    if (ws.readyState === ws.OPEN) {
      ws.send(encodeStatus(status));
      ws.close(1000);
    } else if (stop?.aborted === true && ws.readyState !== ws.CLOSED) {
      // the status and close frame must leave before the daemon destroys the socket
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, STOP_CLOSE_MS);
        ws.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return status;
  });
}
