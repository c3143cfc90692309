// A scripted exec-gateway on 127.0.0.1 for the CLI's edge cases: each namespace picks a raw HTTP
// refusal or what the session does, and a credentials directory trusted by it.
import https from 'node:https';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { V5_PROTOCOL } from '../../../shared/stream/v5.ts';
import { tempDir } from './helpers.ts';
import { createTestCa, type TestCa } from './pki.ts';

export type Scenario =
  /** answers the upgrade with this raw HTTP response */
  | { refuse: (socket: Duplex) => void }
  /** accepts the session; `socket` is its connection (pause it for a peer that stops reading) */
  | { session: (ws: WebSocket, socket: Duplex) => void };

export interface FakeGateway {
  /** https://127.0.0.1:PORT */
  url: string;
  /** ca.crt, client.crt, client.key trusted by the fake */
  credsDir: string;
  dir: string;
  ca: TestCa;
  /** the request targets of the upgrades, in order */
  upgrades: string[];
  /** the server ends of the sessions, in order */
  sessions: WebSocket[];
  close(): Promise<void>;
}

/** A raw HTTP response with Content-Length; `headers` are added as given. */
export function httpResponse(
  code: number,
  headers: Record<string, string>,
  body: string | Buffer,
): (socket: Duplex) => void {
  return (socket) => {
    const b = Buffer.from(body);
    const head =
      `HTTP/1.1 ${code} X\r\nConnection: close\r\nContent-Length: ${b.length}\r\n` +
      Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('') +
      '\r\n';
    socket.on('error', () => undefined);
    socket.end(Buffer.concat([Buffer.from(head), b]));
  };
}

export async function startFakeGateway(scenarios: Record<string, Scenario>): Promise<FakeGateway> {
  const dir = await tempDir('fake-gw');
  const ca = await createTestCa('fake gateway CA');
  const server = await ca.issue('gateway', { server: ['127.0.0.1'] });
  const alice = await ca.issue('alice');
  const credsDir = path.join(dir, 'creds');
  await mkdir(credsDir);
  await writeFile(path.join(credsDir, 'ca.crt'), ca.cert);
  await writeFile(path.join(credsDir, 'client.crt'), alice.cert);
  await writeFile(path.join(credsDir, 'client.key'), alice.key, { mode: 0o600 });
  const upgrades: string[] = [];
  const sessions: WebSocket[] = [];
  const srv = https.createServer({
    cert: server.cert,
    key: server.key,
    ca: ca.cert,
    requestCert: true,
    rejectUnauthorized: true,
  });
  const wss = new WebSocketServer({ noServer: true, handleProtocols: () => V5_PROTOCOL });
  srv.on('upgrade', (req, socket, head) => {
    upgrades.push(req.url ?? '');
    const ns = /namespaces\/([^/]+)\//.exec(req.url ?? '')?.[1] ?? '';
    const sc = scenarios[ns];
    if (sc === undefined) {
      httpResponse(404, {}, `no scenario ${ns}`)(socket);
      return;
    }
    if ('refuse' in sc) {
      sc.refuse(socket);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sessions.push(ws);
      ws.on('error', () => undefined);
      sc.session(ws, socket);
    });
  });
  await new Promise<void>((resolve) => {
    srv.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `https://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    credsDir,
    dir,
    ca,
    upgrades,
    sessions,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      srv.closeAllConnections();
      await new Promise<void>((resolve) =>
        srv.close(() => {
          resolve();
        }),
      );
      await rm(dir, { recursive: true, force: true });
    },
  };
}
