// machine-exec against a scripted exec-gateway: broken peers, refusals, credentials, backpressure.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, mkdir, copyFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  readCredentials,
  runCli,
  ESCAPE_BYTE,
  type CliIo,
} from '../../../daemons/machine-exec/run.ts';
import { connectExec } from '../../../shared/stream/client.ts';
import { Channel, encodeFrame, encodeStatus } from '../../../shared/stream/v5.ts';
import { createTestCa } from './pki.ts';
import { httpResponse, startFakeGateway, type FakeGateway } from './fake-gateway.ts';

const MiB = 1 << 20;

describe('machine-exec CLI against a misbehaving exec-gateway', () => {
  let fake: FakeGateway;
  before(async () => {
    fake = await startFakeGateway({
      r403empty: { refuse: httpResponse(403, {}, '') },
      rhtml: {
        refuse: httpResponse(
          502,
          { 'Content-Type': 'text/html' },
          '<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n</body>\n</html>\n',
        ),
      },
      rhuge: {
        refuse: httpResponse(502, { 'Content-Type': 'text/plain' }, 'x\n'.repeat(4 * MiB)),
      },
      badstatus: {
        session: (ws) => {
          ws.send(encodeFrame(Channel.stdout, 'x\n'));
          ws.send(encodeFrame(Channel.status, 'not json'));
          ws.close(1000);
        },
      },
      code0: {
        session: (ws) => {
          ws.send(encodeStatus({ kind: 'exited', code: 0 }));
          ws.close(1000);
        },
      },
      // the status, then neither a close nor anything else
      statusnoclose: {
        session: (ws) => {
          ws.send(encodeFrame(Channel.stdout, 'done\n'));
          ws.send(encodeStatus({ kind: 'exited', code: 3 }));
        },
      },
      code256: {
        session: (ws) => {
          ws.send(encodeStatus({ kind: 'exited', code: 256 }));
          ws.close(1000);
        },
      },
      codeneg: {
        session: (ws) => {
          ws.send(encodeStatus({ kind: 'exited', code: -1 }));
          ws.close(1000);
        },
      },
      hang: { session: () => undefined },
      // stops reading its connection: the client's sends and its close frame go nowhere
      slowread: {
        session: (_ws, socket) => {
          socket.pause();
        },
      },
      // 64 MiB of stdout as fast as the connection takes it, then exit 0
      flood: {
        session: (ws) => {
          const chunk = Buffer.alloc(64 << 10, 0x61);
          let sent = 0;
          const more = (): void => {
            if (ws.readyState !== ws.OPEN) return;
            while (sent < 64 * MiB && ws.bufferedAmount < 4 * MiB) {
              ws.send(encodeFrame(Channel.stdout, chunk));
              sent += chunk.length;
            }
            if (sent < 64 * MiB) {
              setTimeout(more, 5);
              return;
            }
            ws.send(encodeStatus({ kind: 'exited', code: 0 }));
            ws.close(1000);
          };
          more();
        },
      },
    });
  });
  after(async () => {
    await fake.close();
  });

  function io(opts: { terminal?: CliIo['terminal']; stdin?: Readable; stdout?: Writable } = {}) {
    const stdin = new PassThrough();
    const stdout = opts.stdout ?? new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    if (opts.stdout === undefined) {
      stdout.on('data', (c: Buffer) => {
        out += c.toString();
      });
    }
    stderr.on('data', (c: Buffer) => (err += c.toString()));
    const env = { MACHINE_EXEC_GATEWAY: fake.url, MACHINE_EXEC_CREDS: fake.credsDir };
    return {
      io: {
        stdin: opts.stdin ?? stdin,
        stdout,
        stderr,
        env,
        ...(opts.terminal === undefined ? {} : { terminal: opts.terminal }),
      } satisfies CliIo,
      stdin,
      out: () => out,
      err: () => err,
    };
  }

  function terminal(raw: boolean[]): NonNullable<CliIo['terminal']> {
    return {
      output: true,
      size: () => ({ cols: 80, rows: 24 }),
      setRawMode: (on) => raw.push(on),
      onResize: () => () => undefined,
    };
  }

  it('turns a status frame that is not JSON into a failed session, not a crash', async () => {
    const t = io();
    t.stdin.end();
    assert.equal(await runCli(['badstatus/m1'], t.io), 1);
    assert.equal(t.out(), 'x\n');
    assert.match(t.err(), /^machine-exec: exec session sent an unreadable status: .*not JSON\n$/);
  });

  it('ends with the status a peer sent even when the peer never closes', async () => {
    const t = io();
    t.stdin.end();
    const code = await within(
      runCli(['statusnoclose/m1'], t.io),
      5_000,
      'the exit after the status',
    );
    assert.equal(code, 3);
    assert.equal(t.out(), 'done\n');
  });

  it('exits 1 when the session reports an exit code outside 0–255', async () => {
    for (const [ns, code] of [
      ['code256', 256],
      ['codeneg', -1],
    ] as const) {
      const t = io();
      t.stdin.end();
      assert.equal(await runCli([`${ns}/m1`], t.io), 1, ns);
      assert.match(t.err(), new RegExp(`exit code ${code}, which is not 0–255`), ns);
    }
  });

  it('shows a refusal without a Status as its HTTP status text and one bounded line of the body', async () => {
    const empty = io();
    assert.equal(await runCli(['r403empty/m1'], empty.io), 1);
    assert.equal(
      empty.err(),
      'machine-exec: exec into r403empty/m1 refused: 403 Forbidden: no body\n',
    );
    const html = io();
    assert.equal(await runCli(['rhtml/m1'], html.io), 1);
    assert.equal(
      html.err(),
      'machine-exec: exec into rhtml/m1 refused: 502 Bad Gateway: non-Status body (text/html): ' +
        '<html> <head><title>502 Bad Gateway</title></head> <body> <center><h1>502 Bad Gateway</h1></center> </body> </html>\n',
    );
    const huge = io();
    assert.equal(await runCli(['rhuge/m1'], huge.io), 1);
    assert.match(
      huge.err(),
      /^machine-exec: exec into rhuge\/m1 refused: 502 Bad Gateway: non-Status body \(text\/plain\): (x ){100}…\n$/,
    );
  });

  it('puts the exec path after the path of the gateway URL and refuses a query in it', async () => {
    const t = io();
    t.stdin.end();
    assert.equal(await runCli(['--gateway', `${fake.url}/gw/prefix`, 'code0/m1'], t.io), 0);
    assert.equal(
      fake.upgrades.at(-1),
      '/gw/prefix/apis/compute.ironcore.dev/namespaces/code0/machines/m1/exec?tty=false',
    );
    const q = io();
    assert.equal(await runCli(['--gateway', `${fake.url}/?x=1`, 'code0/m1'], q.io), 2);
    assert.match(q.err(), /has a query, fragment or user name/);
  });

  it('names the credentials file that is empty, garbage or does not match, and the gateway URL as given', async () => {
    const other = await createTestCa('another CA');
    const stranger = await other.issue('alice');
    const cases: [string, Record<string, string>, RegExp][] = [
      ['garbage-key', { 'client.key': 'garbage' }, /client\.key: not a usable private key/],
      ['empty-key', { 'client.key': '' }, /client\.key: not a usable private key/],
      [
        'mismatched-key',
        { 'client.key': stranger.key },
        /client\.key: does not belong to the certificate in \S+\/client\.crt/,
      ],
      ['empty-ca', { 'ca.crt': '' }, /ca\.crt: no PEM certificate in it/],
      ['garbage-cert', { 'client.crt': 'x' }, /client\.crt: no PEM certificate in it/],
      [
        'broken-cert',
        { 'client.crt': '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' },
        /client\.crt: certificate 1 does not parse/,
      ],
    ];
    for (const [name, files, want] of cases) {
      const dir = path.join(fake.dir, name);
      await mkdir(dir);
      for (const f of ['ca.crt', 'client.crt', 'client.key']) {
        await copyFile(path.join(fake.credsDir, f), path.join(dir, f));
      }
      for (const [f, text] of Object.entries(files)) await writeFile(path.join(dir, f), text);
      const t = io();
      assert.equal(await runCli(['--creds', dir, 'code0/m1'], t.io), 1, name);
      assert.match(t.err(), new RegExp(`^machine-exec: reading credentials ${dir}/`), name);
      assert.match(t.err(), want, name);
    }
    // files that are fine, but the CA is not the gateway's
    const dir = path.join(fake.dir, 'other-ca');
    await mkdir(dir);
    await writeFile(path.join(dir, 'ca.crt'), other.cert);
    await writeFile(path.join(dir, 'client.crt'), stranger.cert);
    await writeFile(path.join(dir, 'client.key'), stranger.key);
    const t = io();
    assert.equal(await runCli(['--creds', dir, 'code0/m1'], t.io), 1);
    assert.equal(
      t.err(),
      `machine-exec: exec into code0/m1 through exec-gateway ${fake.url}/: self-signed certificate in certificate chain\n`,
    );
  });

  it('leaves a session whose peer stopped reading at once on Ctrl+], with the terminal restored', async () => {
    const raw: boolean[] = [];
    const t = io({ terminal: terminal(raw) });
    const before = fake.sessions.length;
    const done = runCli(['slowread/m1'], t.io);
    await until(() => fake.sessions.length > before);
    t.stdin.write(Buffer.from([ESCAPE_BYTE]));
    assert.equal(await within(done, 500, 'runCli after Ctrl+]'), 0);
    assert.deepEqual(raw, [true, false]);
    assert.match(t.err(), /left the session/);
  });

  it('close() cuts the socket when the peer does not answer the close handshake within the grace', async () => {
    const creds = await readCredentials(fake.credsDir);
    const before = fake.sessions.length;
    const session = await connectExec(
      `${fake.url}/apis/compute.ironcore.dev/namespaces/slowread/machines/m1/exec`,
      {
        tls: creds,
        onOutput: () => undefined,
        closeGraceMs: 300,
      },
    );
    await until(() => fake.sessions.length > before);
    session.close();
    const status = await within(session.status, 2000, 'the session status after close()');
    assert.equal(status.kind, 'error');
  });

  it('ends the session and restores the terminal when aborted with a signal name', async () => {
    const raw: boolean[] = [];
    const t = io({ terminal: terminal(raw) });
    const stop = new AbortController();
    const before = fake.sessions.length;
    const done = runCli(['hang/m1'], t.io, stop.signal);
    await until(() => fake.sessions.length > before);
    stop.abort('SIGHUP');
    assert.equal(await within(done, 1000, 'runCli after SIGHUP'), 129);
    assert.deepEqual(raw, [true, false]);
    assert.match(t.err(), /ended the session on SIGHUP/);
  });

  it('stops reading the session while stdout is full, and delivers all of it once stdout drains', async () => {
    let held = true;
    const pending: (() => void)[] = [];
    let written = 0;
    const stdout = new Writable({
      highWaterMark: 64 << 10,
      write(chunk: Buffer, _enc, cb) {
        written += chunk.length;
        if (held) pending.push(cb);
        else cb();
      },
    });
    const t = io({ stdout });
    t.stdin.end();
    const done = runCli(['flood/m1'], t.io);
    await sleep(1500);
    // without backpressure all 64 MiB would sit in stdout's buffer by now
    assert.ok(stdout.writableLength < 8 * MiB, `stdout holds ${stdout.writableLength} bytes`);
    held = false;
    for (const cb of pending.splice(0)) cb();
    assert.equal(await done, 0);
    assert.equal(written, 64 * MiB);
  });

  it('stops reading stdin while the socket is backed up by a peer that does not read', async () => {
    let produced = 0;
    const stdin = new Readable({
      read() {
        if (produced >= 128 * MiB) {
          this.push(null);
          return;
        }
        produced += 64 << 10;
        this.push(Buffer.alloc(64 << 10, 0x62));
      },
    });
    const t = io({ stdin });
    const before = fake.sessions.length;
    const done = runCli(['slowread/m1'], t.io);
    await until(() => fake.sessions.length > before);
    await sleep(1500);
    // the high-water mark (1 MiB) plus what the kernel's socket buffers take
    assert.ok(produced < 24 * MiB, `read ${produced} bytes of stdin`);
    fake.sessions.at(-1)!.terminate();
    assert.equal(await done, 1);
    stdin.destroy();
  });
});

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(10);
  }
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`${what} took over ${ms} ms`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
