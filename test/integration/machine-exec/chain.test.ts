// The whole exec chain over real TLS on 127.0.0.1: machine-exec client → exec-gateway →
// machinepoollet → (gRPC, unix socket) machinebroker → sandbox in new namespaces.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls, { type ConnectionOptions } from 'node:tls';
import { parseConfig } from '../../../shared/config/index.ts';
import { silentLogger } from '../../../shared/log/index.ts';
import { ExecRefusedError, connectExec } from '../../../shared/stream/client.ts';
import { createRuntimeClient } from '../../../shared/stream/iri.ts';
import { startBroker, type Broker } from '../../../daemons/machinebroker/broker.ts';
import { configSchema as poolletSchema } from '../../../daemons/machinepoollet/config.ts';
import { startPoollet, type Poollet } from '../../../daemons/machinepoollet/server.ts';
import { configSchema as gatewaySchema } from '../../../daemons/exec-gateway/config.ts';
import { startGateway, type Gateway } from '../../../daemons/exec-gateway/server.ts';
import {
  brokerConfig,
  eventually,
  openCollected,
  pidsWith,
  sandboxDeps,
  tempDir,
} from './helpers.ts';
import { createTestCa, type TestCa } from './pki.ts';

const EXEC = (ns: string, name: string, tty = false): string =>
  `/apis/compute.ironcore.dev/namespaces/${ns}/machines/${name}/exec?tty=${tty}`;

describe('exec chain', () => {
  let dir: string;
  let ca: TestCa;
  let broker: Broker;
  let poollet: Poollet;
  let deadPoollet: Poollet;
  let gateway: Gateway;
  let resetServer: net.Server;
  let gw: string;
  let alice: ConnectionOptions;
  let bob: ConnectionOptions;
  let anonymous: ConnectionOptions;
  let now = 5_000_000;

  const files = async (name: string, cn: string, opts?: Parameters<TestCa['issue']>[1]) => {
    const f = await ca.write(dir, name, await ca.issue(cn, opts));
    return `ca_file = ${JSON.stringify(f.ca_file)}\ncert_file = ${JSON.stringify(f.cert_file)}\nkey_file = ${JSON.stringify(f.key_file)}\n`;
  };
  const clientTls = async (cn: string, groups: string[] = []): Promise<ConnectionOptions> => {
    const leaf = await ca.issue(cn, { groups });
    return { ca: ca.cert, cert: leaf.cert, key: leaf.key };
  };

  before(async () => {
    dir = await tempDir('chain');
    ca = await createTestCa();
    broker = await startBroker(
      brokerConfig(
        dir,
        `[streaming]\nmax_in_flight = 20\n` +
          `[[machines]]\nid = "m1"\nnamespace = "default"\nname = "m1"\ntarget = { type = "sandbox" }\n` +
          `[[machines]]\nid = "exit7"\nnamespace = "default"\nname = "exit7"\ntarget = { type = "sandbox", command = ["/bin/sh", "-c", "exit 7"] }\n`,
      ),
      { log: silentLogger(), sandbox: await sandboxDeps(), clock: () => now },
    );
    const poolletTls = await files('poollet', 'poollet', { server: ['127.0.0.1', 'localhost'] });
    const poolletToml = (socket: string): string =>
      `listen = "127.0.0.1:0"\n[tls]\n${poolletTls}[runtime]\nsocket = ${JSON.stringify(socket)}\n` +
      `[auth]\ntrusted_proxies = ["exec-gateway"]\n` +
      `[[policy]]\nusers = ["alice"]\nnamespaces = ["default"]\n` +
      `[[policy]]\ngroups = ["ops"]\n`;
    poollet = await startPoollet(
      parseConfig(poolletToml(broker.socketPath), 'p.toml', poolletSchema),
      {
        log: silentLogger(),
      },
    );
    deadPoollet = await startPoollet(
      parseConfig(poolletToml(path.join(dir, 'nobody-listens.sock')), 'p2.toml', poolletSchema),
      { log: silentLogger() },
    );
    // a "poollet" that accepts the upgrade and then resets the TCP connection in the middle of it
    const resetLeaf = await ca.issue('reset', { server: ['127.0.0.1'] });
    resetServer = net.createServer((raw) => {
      raw.on('error', () => undefined);
      const sock = new tls.TLSSocket(raw, {
        isServer: true,
        cert: resetLeaf.cert,
        key: resetLeaf.key,
      });
      sock.on('error', () => undefined);
      let head = '';
      sock.on('data', (c: Buffer) => {
        head += c.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? '';
        const accept = createHash('sha1')
          .update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
          .digest('base64');
        sock.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n`,
          () => setTimeout(() => raw.resetAndDestroy(), 50),
        );
      });
    });
    await new Promise<void>((r) => resetServer.listen(0, '127.0.0.1', r));
    const resetPort = (resetServer.address() as { port: number }).port;

    const gatewayToml =
      `listen = "127.0.0.1:0"\npreferred_address_types = ["InternalIP", "Hostname"]\n` +
      `[tls]\n${await files('gateway-server', 'gateway', { server: ['127.0.0.1'] })}` +
      `[upstream_tls]\n${await files('gateway-client', 'exec-gateway')}` +
      `[[policy]]\nusers = ["alice"]\nnamespaces = ["default"]\n` +
      `[[policy]]\ngroups = ["ops"]\nmachines = ["m1"]\n` +
      `[[pools]]\nname = "pool-a"\nport = ${poollet.port}\naddresses = [{ type = "ExternalIP", address = "192.0.2.1" }, { type = "InternalIP", address = "127.0.0.1" }]\n` +
      `[[pools]]\nname = "pool-dead"\nport = ${deadPoollet.port}\naddresses = [{ type = "Hostname", address = "localhost" }]\n` +
      `[[pools]]\nname = "pool-noaddr"\nport = 1\naddresses = [{ type = "ExternalIP", address = "192.0.2.1" }]\n` +
      `[[pools]]\nname = "pool-reset"\nport = ${resetPort}\naddresses = [{ type = "InternalIP", address = "127.0.0.1" }]\n` +
      `[[machines]]\nnamespace = "default"\nname = "m1"\npool = "pool-a"\n` +
      `[[machines]]\nnamespace = "default"\nname = "exit7"\npool = "pool-a"\n` +
      `[[machines]]\nnamespace = "default"\nname = "ghost"\npool = "pool-a"\n` +
      `[[machines]]\nnamespace = "default"\nname = "unscheduled"\n` +
      `[[machines]]\nnamespace = "default"\nname = "lost"\npool = "pool-gone"\n` +
      `[[machines]]\nnamespace = "default"\nname = "noaddr"\npool = "pool-noaddr"\n` +
      `[[machines]]\nnamespace = "default"\nname = "dead"\npool = "pool-dead"\n` +
      `[[machines]]\nnamespace = "default"\nname = "reset"\npool = "pool-reset"\n` +
      `[[machines]]\nnamespace = "secret"\nname = "m1"\npool = "pool-a"\n`;
    gateway = await startGateway(parseConfig(gatewayToml, 'g.toml', gatewaySchema), {
      log: silentLogger(),
    });
    gw = `https://127.0.0.1:${gateway.port}`;
    alice = await clientTls('alice');
    bob = await clientTls('bob', ['ops']);
    anonymous = { ca: ca.cert };
  });

  after(async () => {
    await gateway.close(100);
    await Promise.all([poollet.close(100), deadPoollet.close(100)]);
    await broker.close(100);
    await new Promise((r) => resetServer.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  const refused = (status: number, re?: RegExp) => (err: unknown) =>
    err instanceof ExecRefusedError &&
    err.status === status &&
    (re === undefined || re.test(err.message));

  it('round-trips a command and its output through all three hops', async () => {
    const s = await openCollected(gw + EXEC('default', 'm1'), { tls: alice });
    s.session.write('echo hello from $(hostname -s >/dev/null; echo sandbox)\n');
    s.session.closeStdin();
    assert.deepEqual(await s.status, { kind: 'exited', code: 0 });
    assert.equal(s.stdout(), 'hello from sandbox\n');
  });

  it('delivers the exit status of the machine command', async () => {
    const s = await openCollected(gw + EXEC('default', 'exit7'), { tls: alice });
    assert.deepEqual(await s.status, { kind: 'exited', code: 7 });
  });

  it('carries resize messages to the PTY (stty size changes)', async () => {
    const s = await openCollected(gw + EXEC('default', 'm1', true), { tls: alice });
    s.session.resize({ cols: 101, rows: 33 });
    s.session.write('stty size; echo A$((2+2))\n');
    await s.waitFor('A4');
    s.session.resize({ cols: 77, rows: 21 });
    s.session.write('stty size; exit 0\n');
    assert.deepEqual(await s.status, { kind: 'exited', code: 0 });
    assert.match(s.stdout(), /33 101[\s\S]*21 77/);
  });

  it('lets a group named in the policy in', async () => {
    const s = await openCollected(gw + EXEC('default', 'm1'), { tls: bob });
    s.session.write('echo via-group\n');
    s.session.closeStdin();
    await s.status;
    assert.equal(s.stdout(), 'via-group\n');
  });

  it('answers 401 without a client certificate', async () => {
    await assert.rejects(
      connectExec(gw + EXEC('default', 'm1'), { tls: anonymous, onOutput: () => undefined }),
      refused(401, /no client certificate/),
    );
  });

  it('answers 401 for a certificate from another CA', async () => {
    const other = await (await createTestCa('other CA')).issue('alice');
    await assert.rejects(
      connectExec(gw + EXEC('default', 'm1'), {
        tls: { ca: ca.cert, cert: other.cert, key: other.key },
        onOutput: () => undefined,
      }),
      refused(401, /rejected/),
    );
  });

  it('answers 403 when the policy denies the user', async () => {
    await assert.rejects(
      connectExec(gw + EXEC('default', 'exit7'), { tls: bob, onOutput: () => undefined }),
      refused(403, /bob may not exec into machine default\/exit7/),
    );
  });

  it('answers 403 at the poollet when the gateway forwards a user its policy denies', async () => {
    // the gateway allows alice anywhere in "default" only, and the poollet agrees; secret/m1 is
    // allowed to nobody at the gateway, so ask the poollet directly as the gateway would
    const gwClient = await clientTls('exec-gateway');
    await assert.rejects(
      connectExec(`https://127.0.0.1:${poollet.port}` + EXEC('secret', 'm1'), {
        tls: gwClient,
        headers: { 'x-remote-user': 'alice' },
        onOutput: () => undefined,
      }),
      refused(403, /alice may not exec/),
    );
  });

  it('refuses identity headers from a certificate that is not a trusted proxy', async () => {
    await assert.rejects(
      connectExec(`https://127.0.0.1:${poollet.port}` + EXEC('default', 'm1'), {
        tls: bob,
        headers: { 'x-remote-user': 'alice' },
        onOutput: () => undefined,
      }),
      refused(403, /not a trusted proxy/),
    );
  });

  it('carries a user name outside Latin-1 to the poollet (identity headers are percent-encoded)', async () => {
    const s = await openCollected(gw + EXEC('default', 'm1'), {
      tls: await clientTls('李雷', ['ops']),
    });
    s.session.closeStdin();
    assert.deepEqual(await s.status, { kind: 'exited', code: 0 });
  });

  it('reads one group per comma-separated, percent-encoded item of x-remote-group', async () => {
    const leaf = await ca.issue('exec-gateway');
    const asGateway = { ca: ca.cert, cert: leaf.cert, key: leaf.key };
    const poolletExec = `https://127.0.0.1:${poollet.port}` + EXEC('default', 'm1');
    const as = (user: string, group: string) =>
      openCollected(poolletExec, {
        tls: asGateway,
        headers: { 'x-remote-user': user, 'x-remote-group': group },
      });
    // the poollet lets group ops in anywhere; one group named "x,ops" is not ops
    await assert.rejects(as('mallory', 'x%2Cops'), refused(403, /mallory may not exec/));
    const s = await as('mallory', 'x,ops');
    s.session.closeStdin();
    assert.deepEqual(await s.status, { kind: 'exited', code: 0 });
    await assert.rejects(as('%E0', 'ops'), refused(401, /not percent-encoded UTF-8/));
  });

  it('answers 401 with a body at the poollet without a client certificate', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      https
        .get(`https://127.0.0.1:${poollet.port}` + EXEC('default', 'm1'), { ca: ca.cert }, (r) => {
          let body = '';
          r.on('data', (c: Buffer) => (body += c.toString()));
          r.on('end', () => {
            resolve({ status: r.statusCode ?? 0, body });
          });
        })
        .on('error', reject);
    });
    assert.equal(res.status, 401);
    assert.equal((JSON.parse(res.body) as { reason: string }).reason, 'Unauthorized');
  });

  it('serves /healthz and /readyz, and answers a plain request to the exec route with 400', async () => {
    const get = (url: string, opts: https.RequestOptions) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        https
          .get(url, opts, (r) => {
            let body = '';
            r.on('data', (c: Buffer) => (body += c.toString()));
            r.on('end', () => {
              resolve({ status: r.statusCode ?? 0, body });
            });
          })
          .on('error', reject);
      });
    for (const base of [gw, `https://127.0.0.1:${poollet.port}`]) {
      assert.equal((await get(`${base}/healthz`, { ca: ca.cert })).status, 200);
      assert.equal((await get(`${base}/readyz`, { ca: ca.cert })).status, 200);
    }
    const plain = await get(gw + EXEC('default', 'm1'), alice);
    assert.equal(plain.status, 400);
    assert.match(plain.body, /WebSocket upgrade/);
  });

  it('answers 400 to a request target the URL parser refuses, before authentication, and serves on', async () => {
    // Node's HTTP parser lets `//[` through; new URL() throws on it
    const raw = (port: number, secure: boolean, target: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = secure
          ? tls.connect({ port, host: '127.0.0.1', ca: ca.cert }) // no client certificate
          : net.connect({ port, host: '127.0.0.1' });
        let got = '';
        s.on('data', (c: Buffer) => (got += c.toString('latin1')));
        s.on('error', reject);
        s.on('close', () => {
          resolve(got);
        });
        s.end(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      });
    const streamingPort = Number(new URL(broker.streamingBase).port);
    for (const [name, port, secure] of [
      ['exec-gateway', gateway.port, true],
      ['machinepoollet', poollet.port, true],
      ['streaming server', streamingPort, false],
    ] as const) {
      const answer = await raw(port, secure, '//[');
      assert.match(answer, /^HTTP\/1\.1 400 /, `${name}: ${answer}`);
      assert.match(answer, /parsing the request target/, name);
      assert.match(await raw(port, secure, '/healthz'), /^HTTP\/1\.1 200 /, `${name} serves on`);
    }
  });

  it('answers 404 for an unknown machine at the gateway', async () => {
    await assert.rejects(
      connectExec(gw + EXEC('default', 'nosuch'), { tls: alice, onOutput: () => undefined }),
      refused(404, /machine default\/nosuch not found/),
    );
  });

  it('relays the poollet 404 for a machine its runtime does not have', async () => {
    await assert.rejects(
      connectExec(gw + EXEC('default', 'ghost'), { tls: alice, onOutput: () => undefined }),
      refused(404, /not found in this pool's runtime/),
    );
  });

  it('answers 409 for a machine without a pool or with an unknown pool', async () => {
    await assert.rejects(
      connectExec(gw + EXEC('default', 'unscheduled'), { tls: alice, onOutput: () => undefined }),
      refused(409, /not assigned to a machine pool/),
    );
    await assert.rejects(
      connectExec(gw + EXEC('default', 'lost'), { tls: alice, onOutput: () => undefined }),
      refused(409, /pool-gone .* does not exist/),
    );
  });

  it('answers 503 for a pool without an address of a preferred type', async () => {
    await assert.rejects(
      connectExec(gw + EXEC('default', 'noaddr'), { tls: alice, onOutput: () => undefined }),
      refused(503, /no address of the types InternalIP, Hostname/),
    );
  });

  it('answers 502 when the broker behind the poollet is down', async () => {
    await assert.rejects(
      connectExec(gw + EXEC('default', 'dead'), { tls: alice, onOutput: () => undefined }),
      refused(502, /runtime unreachable/),
    );
  });

  it('answers 429 with Retry-After when the token store is full, and recovers', async () => {
    now += 120_000;
    const runtime = createRuntimeClient(broker.socketPath);
    try {
      for (let i = 0; i < 20; i++) await runtime.exec('m1', false);
      await assert.rejects(
        connectExec(gw + EXEC('default', 'm1'), { tls: alice, onOutput: () => undefined }),
        (err: unknown) => refused(429)(err) && Number((err as ExecRefusedError).retryAfter) >= 1,
      );
    } finally {
      runtime.close();
    }
    now += 60_000;
    const s = await openCollected(gw + EXEC('default', 'm1'), { tls: alice });
    s.session.closeStdin();
    assert.deepEqual(await s.status, { kind: 'exited', code: 0 });
  });

  it('refuses malformed handshakes at the gateway and the poollet without asking the runtime for a token', async () => {
    now += 120_000; // whatever earlier tests left pending has expired
    const before = broker.store.size;
    const upgrade = (base: string, opts: ConnectionOptions, headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = https.request(base + EXEC('default', 'm1'), {
          ...opts,
          headers: {
            connection: 'Upgrade',
            upgrade: 'websocket',
            'sec-websocket-version': '13',
            'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
            ...headers,
          },
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('upgrade', (_res, sock) => {
          sock.destroy();
          reject(new Error('upgraded'));
        });
        req.on('error', reject);
        req.end();
      });
    const gatewayLeaf = await ca.issue('exec-gateway');
    const asGateway = { ca: ca.cert, cert: gatewayLeaf.cert, key: gatewayLeaf.key };
    // more than max_in_flight (20): had each taken a token, the store would be full
    for (let i = 0; i < 25; i++) {
      assert.equal(await upgrade(gw, alice, {}), 400, 'gateway: no subprotocol offered');
      assert.equal(
        await upgrade(`https://127.0.0.1:${poollet.port}`, asGateway, {
          'x-remote-user': 'alice',
          'sec-websocket-protocol': 'v5.channel.k8s.io, v5.channel.k8s.io',
        }),
        400,
        'poollet: a subprotocol twice',
      );
    }
    assert.equal(broker.store.size, before, 'no token was handed out');
    const s = await openCollected(gw + EXEC('default', 'm1'), { tls: alice });
    s.session.closeStdin();
    assert.deepEqual(await s.status, { kind: 'exited', code: 0 });
  });

  it('survives an upstream that resets the connection in the middle of a session', async () => {
    const s = await openCollected(gw + EXEC('default', 'reset'), { tls: alice });
    const st = await s.status;
    assert.equal(st.kind, 'error');
    const after = await openCollected(gw + EXEC('default', 'm1'), { tls: alice });
    after.session.write('echo still-serving\n');
    after.session.closeStdin();
    await after.status;
    assert.equal(after.stdout(), 'still-serving\n');
  });

  it('runs 100 concurrent sessions through the chain', async () => {
    now += 120_000;
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const s = await openCollected(gw + EXEC('default', 'm1'), { tls: alice });
        s.session.write(`echo session-${i}\n`);
        s.session.closeStdin();
        const st = await s.status;
        return { st, out: s.stdout(), i };
      }),
    );
    for (const r of results) {
      assert.deepEqual(r.st, { kind: 'exited', code: 0 });
      assert.equal(r.out, `session-${r.i}\n`);
    }
  });

  it('ends the console process when the client closes', async () => {
    const marker = `sleep 97${process.pid % 1000}3`;
    const s = await openCollected(gw + EXEC('default', 'm1', true), { tls: alice });
    s.session.write(`${marker}\n`);
    await eventually(async () => (await pidsWith(marker)).length > 0, 10_000, 'the sleep to start');
    s.session.close();
    await eventually(async () => (await pidsWith(marker)).length === 0, 10_000, 'the sleep to end');
    await eventually(
      () => Promise.resolve(gateway.sessionCount() === 0 && poollet.sessionCount() === 0),
      5_000,
      'sessions to close',
    );
  });
});
