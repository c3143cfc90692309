// The streaming server: token URLs on loopback. A token is taken (once) when its WebSocket upgrade
// arrives; the session then runs against the machine's target. Unknown, used or expired → 404.
import http, { type IncomingMessage } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { HttpError, sendError, toHttpError } from '../../shared/http/errors.ts';
import { proxyUpgrade } from '../../shared/http/proxy.ts';
import {
  checkWebSocketHandshake,
  execPath,
  handleHealth,
  handleUpgrades,
  requestUrl,
  serverOptions,
  SessionSet,
} from '../../shared/http/server.ts';
import type { Logger } from '../../shared/log/index.ts';
import { encodeStatus, V5_PROTOCOL, type TokenStore } from '../../shared/stream/index.ts';
import type { MachineConfig, Target } from './config.ts';
import {
  bridge,
  connectSerial,
  openSandboxPipes,
  openSandboxPty,
  serialConsole,
  type Console,
  type SandboxDeps,
} from './console.ts';
import type { PendingExec } from './runtime.ts';

export interface StreamingDeps {
  store: TokenStore<PendingExec>;
  machines: () => readonly MachineConfig[];
  sandbox: SandboxDeps;
  /** TLS client options (CA, certificate, key) of each upstream target, by machine id */
  upstreamTls: () => ReadonlyMap<string, ConnectionOptions>;
  log: Logger;
}

const TOKEN_PATH = /^\/exec\/([^/]+)$/;
const DEFAULT_SIZE = { cols: 80, rows: 24 };
/** How long a stop waits for upstream sessions to take their status and close. */
const UPSTREAM_STOP_MS = 1_000;

/** The streaming HTTP server (not yet listening) and its open sessions. */
export function createStreamingServer(deps: StreamingDeps): {
  server: http.Server;
  sessions: SessionSet;
  /** ends every session: an open one gets an InternalError status `reason` and its console is
   * killed (an upstream one, its upstream connection cut); one still starting has what its start produced killed; resolves once
   * they have all ended */
  endConsoles(reason: string): Promise<void>;
} {
  const log = deps.log.child({ component: 'streaming' });
  const sessions = new SessionSet();
  const stopping = new AbortController();
  /** `p`, kept in `set` until it settles (what a stop waits for) */
  const tracked = async <T>(set: Set<Promise<unknown>>, p: Promise<T>): Promise<T> => {
    set.add(p);
    try {
      return await p;
    } finally {
      set.delete(p);
    }
  };
  const bridges = new Set<Promise<unknown>>();
  // sessions whose console is being opened, until it is bridged or ended
  const starts = new Set<Promise<unknown>>();
  /**
   * Opens a console with `open` and bridges it to the client once its WebSocket is open. A console
   * the session cannot use (the client left, the daemon is stopping) is killed and waited for
   * before this settles; until then the start is tracked, so that a stop waits for it.
   */
  const run = async (
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    open: () => Promise<Console>,
    slog: Logger,
  ): Promise<void> => {
    let bridged: Promise<unknown> | undefined;
    const start = (async (): Promise<void> => {
      const con = await open();
      if (!stopping.signal.aborted && !socket.destroyed) {
        const ws = await upgrade(req, socket, head);
        if (ws !== undefined) {
          // tracked in `bridges` before the start settles: a stop waiting for it sees the bridge
          bridged = tracked(bridges, bridge(ws, con, slog, stopping.signal));
          return;
        }
      }
      con.kill();
      await con.done;
      if (stopping.signal.aborted) {
        throw new HttpError('ServiceUnavailable', String(stopping.signal.reason));
      }
    })();
    await tracked(starts, start);
    await bridged;
  };
  // upstream sessions, until their proxy is done
  const proxied = new Set<Promise<unknown>>();
  const busySerial = new Set<string>();
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 1 << 20,
    handleProtocols: (offered) => (offered.has(V5_PROTOCOL) ? V5_PROTOCOL : false),
  });
  const server = http.createServer(serverOptions());

  server.on('request', (req, res) => {
    if (handleHealth(req, res, () => server.listening)) return;
    try {
      const path = requestUrl(req).pathname;
      throw TOKEN_PATH.test(path)
        ? new HttpError(
            'BadRequest',
            `exec needs a WebSocket upgrade with subprotocol ${V5_PROTOCOL}`,
          )
        : new HttpError('NotFound', `no route ${path}`);
    } catch (err) {
      sendError(res, toHttpError(err));
    }
  });

  // undefined when the handshake never completes (ws answers 400 and drops the socket without
  // calling back), so that the console started for it is ended rather than leaked
  const upgrade = (
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
  ): Promise<WebSocket | undefined> =>
    new Promise((resolve) => {
      const onClose = (): void => {
        resolve(undefined);
      };
      socket.once('close', onClose);
      wss.handleUpgrade(req, socket, head, (ws) => {
        socket.off('close', onClose);
        resolve(ws);
      });
    });

  handleUpgrades(server, sessions, log, serve);

  async function serve(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const m = TOKEN_PATH.exec(requestUrl(req).pathname);
    if (m === null) throw new HttpError('NotFound', `no route ${requestUrl(req).pathname}`);
    // a handshake ws would refuse must not use up the token
    checkWebSocketHandshake(req, V5_PROTOCOL);
    const pending = deps.store.take(m[1]!);
    if (pending === undefined)
      throw new HttpError('NotFound', 'exec token unknown, used or expired');
    const machine = deps.machines().find((x) => x.id === pending.machineId);
    if (machine === undefined) {
      throw new HttpError('NotFound', `exec: machine ${pending.machineId} is no longer configured`);
    }
    const slog = log.child({ machine: machine.id, target: machine.target.type });
    const target: Target = machine.target;
    switch (target.type) {
      case 'sandbox': {
        const open = async (): Promise<Console> => {
          try {
            return pending.tty
              ? await openSandboxPty(deps.sandbox, target.command, DEFAULT_SIZE, slog)
              : openSandboxPipes(deps.sandbox, target.command, slog);
          } catch (err) {
            throw new HttpError(
              'InternalError',
              `starting sandbox of ${machine.id}: ${(err as Error).message}`,
              { cause: err },
            );
          }
        };
        await run(req, socket, head, open, slog);
        return;
      }
      case 'serial': {
        if (busySerial.has(target.socket)) {
          throw new HttpError(
            'Conflict',
            `serial console of machine ${machine.namespace}/${machine.name} is in use by another session`,
          );
        }
        busySerial.add(target.socket);
        const open = async (): Promise<Console> => {
          let sock: net.Socket;
          try {
            sock = await connectSerial(target.socket);
          } catch (err) {
            throw new HttpError('BadGateway', (err as Error).message, { cause: err });
          }
          return serialConsole(sock, target.socket, slog);
        };
        try {
          await run(req, socket, head, open, slog);
        } finally {
          busySerial.delete(target.socket);
        }
        return;
      }
      case 'upstream': {
        const tls = deps.upstreamTls().get(machine.id);
        const url = new URL(
          execPath({
            namespace: target.namespace ?? machine.namespace,
            name: target.name ?? machine.name,
          }),
          target.url,
        );
        url.searchParams.set('tty', String(pending.tty));
        const proxy = proxyUpgrade(
          req,
          socket,
          head,
          {
            url,
            ...(tls === undefined ? {} : { tls }),
            timeoutMs: target.timeout,
            stop: {
              signal: stopping.signal,
              message: (reason) => encodeStatus({ kind: 'error', message: String(reason) }),
            },
          },
          slog,
        );
        const outcome = await tracked(proxied, proxy);
        slog.info({ outcome: outcome.kind }, 'upstream exec session ended');
        return;
      }
    }
  }

  return {
    server,
    sessions,
    async endConsoles(reason) {
      stopping.abort(reason);
      // a start settling may hand its console to a bridge, never start another
      while (starts.size > 0) await Promise.allSettled([...starts]);
      // an upstream session's status and close frame must leave before the sockets are destroyed
      const upstreams = Promise.allSettled([...proxied]);
      let timer: NodeJS.Timeout | undefined;
      await Promise.all([
        Promise.allSettled([...bridges]),
        Promise.race([
          upstreams,
          new Promise((resolve) => (timer = setTimeout(resolve, UPSTREAM_STOP_MS))),
        ]).finally(() => {
          clearTimeout(timer);
        }),
      ]);
    },
  };
}
