// SessionManager and Session with a fake console: attach tokens, attachments and their lag.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HttpError } from '../../../../shared/http/errors.ts';
import { parseConfig } from '../../../../shared/config/index.ts';
import { silentLogger } from '../../../../shared/log/index.ts';
import type { ExitStatus } from '../../../../shared/stream/index.ts';
import { configSchema } from '../../../../daemons/webterminal/config.ts';
import type { TerminalConsole } from '../../../../daemons/webterminal/sandbox.ts';
import {
  READER_LAG,
  SessionManager,
  WRITER_LAG,
  type Attachment,
} from '../../../../daemons/webterminal/sessions.ts';

/** A console that only records what was done to it; `emit` plays output. */
function fakeConsole(): TerminalConsole & { emit(d: Buffer): void; paused: boolean } {
  let out: (d: Buffer) => void = () => undefined;
  let end: (s: ExitStatus) => void = () => undefined;
  const con = {
    paused: false,
    emit: (d: Buffer) => {
      out(d);
    },
    onOutput: (fn: (d: Buffer) => void) => {
      out = fn;
    },
    write: () => true,
    onceInputDrained: (fn: () => void) => {
      setImmediate(fn);
    },
    resize: () => undefined,
    pause: () => {
      con.paused = true;
    },
    resume: () => {
      con.paused = false;
    },
    done: new Promise<ExitStatus>((resolve) => {
      end = resolve;
    }),
    kill: () => {
      end({ kind: 'error', message: 'killed' });
      return Promise.resolve();
    },
    pids: [],
  };
  return con;
}

const config = parseConfig(
  'listen = "127.0.0.1:0"\npublic_origins = ["https://term.example.com"]\n' +
    '[[targets]]\nname = "shell"\ntype = "sandbox"\n',
  'webterminal.toml',
  configSchema,
);

function manager(con: TerminalConsole = fakeConsole()): SessionManager {
  return new SessionManager({
    ttlMs: 60_000,
    readyTimeoutMs: 1000,
    maxPerUser: 5,
    maxTotal: 100,
    attachTokenTtlMs: 30_000,
    scrollback: 1024,
    maxAttachments: 8,
    targets: () => config.targets,
    start: () => Promise.resolve(con),
    clock: () => 1_000_000,
    log: silentLogger(),
  });
}

const alice = { user: 'alice', groups: [] };

describe('webterminal attach tokens', () => {
  it('keeps one unused attach token per session and user: a new one replaces the last', async () => {
    const m = manager();
    const { session } = m.create(alice, 'shell');
    await session.ready;
    const first = m.attachToken(session, 'alice').token;
    for (let i = 0; i < 1500; i++) m.attachToken(session, 'alice');
    const last = m.attachToken(session, 'alice').token;
    assert.throws(
      () => m.takeAttachToken(first, session.id, 'alice'),
      (e: unknown) => e instanceof HttpError && e.status === 404,
    );
    session.viewers.add('bob');
    const bob = m.attachToken(session, 'bob');
    assert.equal(bob.readOnly, true);
    assert.equal(m.takeAttachToken(bob.token, session.id, 'bob').grant.user, 'bob');
    assert.equal(m.takeAttachToken(last, session.id, 'alice').grant.user, 'alice');
  });

  it('answers 503 with Retry-After, not a 500, when the attach tokens of all users fill the store', async () => {
    const m = manager();
    const { session } = m.create(alice, 'shell');
    await session.ready;
    for (let i = 0; i < 1000; i++) m.attachToken(session, `viewer-${i}`);
    assert.throws(
      () => m.attachToken(session, 'alice'),
      (e: unknown) => {
        assert.ok(e instanceof HttpError);
        assert.equal(e.status, 503);
        assert.match(e.headers['retry-after'] ?? '', /^[1-9]\d*$/);
        return true;
      },
    );
  });
});

/** An attachment whose unsent bytes are whatever the test says; `ended` once dropped. */
function fakeAttachment(readOnly: boolean): Attachment & {
  lag: number;
  got: number;
  ended: ExitStatus | undefined;
} {
  const a = {
    readOnly,
    lag: 0,
    got: 0,
    ended: undefined as ExitStatus | undefined,
    send: (d: Buffer) => {
      a.got += d.length;
    },
    buffered: () => a.lag,
    end: (s: ExitStatus) => {
      a.ended = s;
    },
  };
  return a;
}

describe('webterminal attachments that lag', () => {
  it('pauses the console for a lagging writer, never for a lagging viewer', async () => {
    const con = fakeConsole();
    const { session } = manager(con).create(alice, 'shell');
    await session.ready;
    const viewer = fakeAttachment(true);
    const writer = fakeAttachment(false);
    session.attach(viewer);
    session.attach(writer);
    viewer.lag = 2 << 20;
    con.emit(Buffer.from('x'));
    assert.equal(con.paused, false, 'a viewer that stops reading froze the terminal');
    writer.lag = 2 << 20;
    con.emit(Buffer.from('x'));
    assert.equal(con.paused, true);
    writer.lag = 0;
    session.drained();
    assert.equal(con.paused, false);
  });

  it('drops a viewer past scrollback + READER_LAG and a writer past scrollback + WRITER_LAG; the rest go on', async () => {
    const con = fakeConsole();
    const { session } = manager(con).create(alice, 'shell');
    await session.ready;
    const viewer = fakeAttachment(true);
    const writer = fakeAttachment(false);
    const other = fakeAttachment(false);
    for (const a of [viewer, writer, other]) session.attach(a);
    viewer.lag = 1024 + READER_LAG + 1;
    con.emit(Buffer.from('a'));
    assert.match(String(viewer.ended?.kind === 'error' && viewer.ended.message), /fell behind/);
    assert.equal(session.attachments, 2);
    const seen = viewer.got;
    con.emit(Buffer.from('b'));
    assert.equal(viewer.got, seen, 'output still went to a dropped viewer');
    writer.lag = 1024 + WRITER_LAG + 1;
    con.emit(Buffer.from('c'));
    assert.match(String(writer.ended?.kind === 'error' && writer.ended.message), /fell behind/);
    assert.equal(other.ended, undefined);
    assert.equal(session.attachments, 1);
  });
});
