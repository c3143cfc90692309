import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import {
  runDaemon,
  type DaemonContext,
  type DaemonDeps,
  type DaemonSpec,
} from '../../../../shared/daemon/index.ts';
import { createNotifier } from '../../../../shared/systemd/index.ts';
import { createMemoryLogger } from '../../../../shared/log/index.ts';

const schema = z.strictObject({ greeting: z.string().default('hello') });
type C = z.output<typeof schema>;

function harness(env: Record<string, string> = {}) {
  const signals = new EventEmitter();
  const sent: string[] = [];
  const { log, records } = createMemoryLogger('t');
  const notify = createNotifier({
    log,
    env: { NOTIFY_SOCKET: '/fake' },
    sd: { send: (s) => void sent.push(s) },
  });
  let out = '';
  let err = '';
  const deps: DaemonDeps = {
    signals,
    log,
    notify,
    env,
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  };
  return { signals, sent, records, deps, out: () => out, err: () => err };
}

/** A spec whose run() readies, then waits for the abort and resolves after `drainMs`. */
function spec(
  over: Partial<DaemonSpec<C>> = {},
  drainMs = 0,
): DaemonSpec<C> & { ctxs: DaemonContext<C>[] } {
  const ctxs: DaemonContext<C>[] = [];
  return {
    name: 'testd',
    schema,
    defaultConfigPath: '/nonexistent/testd.toml',
    usage: 'usage: testd [--config FILE]',
    async run(ctx) {
      ctxs.push(ctx);
      ctx.ready('up');
      await once(ctx.signal, 'abort');
      if (drainMs > 0) await new Promise((r) => setTimeout(r, drainMs));
    },
    ...over,
    ctxs,
  };
}

/** Resolves once the daemon called ready(). */
async function readied(sent: string[]): Promise<void> {
  while (!sent.some((s) => s.startsWith('READY=1'))) await new Promise((r) => setImmediate(r));
}

describe('runDaemon', () => {
  let dir = '';
  let config = '';
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hostplane-daemon-unit-'));
    config = path.join(dir, 'testd.toml');
    await writeFile(config, 'greeting = "hi"\n');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints usage for --help and the version for --version, exit 0, without reading config', async () => {
    const h = harness();
    assert.equal(await runDaemon(spec(), ['--help'], h.deps), 0);
    assert.equal(h.out(), 'usage: testd [--config FILE]\n');
    const v = harness();
    assert.equal(await runDaemon(spec({ version: '1.2.3' }), ['--version'], v.deps), 0);
    assert.equal(v.out(), 'testd 1.2.3\n');
  });

  it('refuses an unknown flag with exit 64 and the usage', async () => {
    const h = harness();
    assert.equal(await runDaemon(spec(), ['--cofnig', config], h.deps), 64);
    assert.match(h.err(), /^testd: Unknown option '--cofnig'.*\n\nusage: testd/);
  });

  it('reads the default config path when --config is absent and exits 78 if it is missing', async () => {
    const h = harness();
    assert.equal(await runDaemon(spec(), [], h.deps), 78);
    assert.equal(h.err(), '/nonexistent/testd.toml: no such file\n');
    assert.deepEqual(h.sent, []);
  });

  it('passes daemon flags and positionals through ctx.flags and ctx.argv', async () => {
    const h = harness();
    const s = spec({
      flags: { cleanup: { type: 'boolean' }, mode: { type: 'string' } },
      positionals: true,
      run: async (ctx) => {
        s.ctxs.push(ctx);
        await Promise.resolve();
      },
    });
    assert.equal(
      await runDaemon(s, ['--cleanup', '--config', config, '--mode=x', 'pos'], h.deps),
      0,
    );
    const ctx = s.ctxs[0]!;
    assert.deepEqual(ctx.flags, { cleanup: true, mode: 'x' });
    assert.deepEqual(ctx.argv, ['--cleanup', '--mode', 'x', 'pos']);
    assert.equal(ctx.config.greeting, 'hi');
  });

  it('on SIGTERM sends STOPPING=1, aborts ctx.signal, waits for run() and returns 0', async () => {
    const h = harness();
    const done = runDaemon(spec({}, 20), ['--config', config], h.deps);
    await readied(h.sent);
    h.signals.emit('SIGTERM');
    assert.equal(await done, 0);
    assert.deepEqual(h.sent, ['READY=1\nSTATUS=up', 'STOPPING=1']);
    assert.equal(h.signals.listenerCount('SIGTERM'), 0, 'signal handlers are removed');
    assert.equal(h.signals.listenerCount('SIGHUP'), 0);
  });

  it('returns 1 with a log line when the drain outlasts its bound', async () => {
    const h = harness();
    const done = runDaemon(spec({ drainTimeoutMs: 30 }, 5_000), ['--config', config], h.deps);
    await readied(h.sent);
    const t0 = performance.now();
    h.signals.emit('SIGINT');
    assert.equal(await done, 1);
    assert.ok(performance.now() - t0 < 2_000);
    assert.ok(h.records.some((r) => /drain did not finish within 30 ms/.test(String(r['msg']))));
  });

  it('takes the drain bound from the config when drainTimeoutMs is a function of it', async () => {
    const h = harness();
    const done = runDaemon(
      spec({ drainTimeoutMs: (c) => c.greeting.length * 10 }, 5_000),
      ['--config', config],
      h.deps,
    );
    await readied(h.sent);
    h.signals.emit('SIGTERM');
    assert.equal(await done, 1);
    assert.ok(h.records.some((r) => /drain did not finish within 20 ms/.test(String(r['msg']))));
  });

  it('stops at once on a second SIGTERM', async () => {
    const h = harness();
    const done = runDaemon(spec({}, 5_000), ['--config', config], h.deps);
    await readied(h.sent);
    h.signals.emit('SIGTERM');
    h.signals.emit('SIGTERM');
    assert.equal(await done, 1);
    assert.ok(h.records.some((r) => /second stop signal/.test(String(r['msg']))));
  });

  it('on SIGHUP reloads the config through the handlers, between RELOADING=1 and READY=1', async () => {
    const h = harness();
    const file = path.join(dir, 'reload.toml');
    await writeFile(file, 'greeting = "one"\n');
    const seen: string[] = [];
    const reloaded = new EventEmitter();
    const s = spec({
      run: async (ctx) => {
        ctx.onReload(async (next) => {
          seen.push(`${ctx.config.greeting}->${next.greeting}`);
          await Promise.resolve();
          reloaded.emit('done');
        });
        ctx.ready();
        await once(ctx.signal, 'abort');
        seen.push(`final ${ctx.config.greeting}`);
      },
    });
    const done = runDaemon(s, ['--config', file], h.deps);
    await readied(h.sent);
    await writeFile(file, 'greeting = "two"\n');
    const r = once(reloaded, 'done');
    h.signals.emit('SIGHUP');
    await r;
    while (h.sent.length < 3) await new Promise((res) => setImmediate(res));
    h.signals.emit('SIGTERM');
    assert.equal(await done, 0);
    assert.deepEqual(seen, ['one->two', 'final two']);
    assert.equal(h.sent[0], 'READY=1');
    assert.match(h.sent[1] ?? '', /^RELOADING=1\nMONOTONIC_USEC=\d+$/);
    assert.equal(h.sent[2], 'READY=1');
  });

  it('keeps the old config when the new one is invalid or a handler refuses it', async () => {
    const h = harness();
    const file = path.join(dir, 'reload-bad.toml');
    await writeFile(file, 'greeting = "one"\n');
    let refuse = false;
    const s = spec({
      run: async (ctx) => {
        ctx.onReload(async () => {
          await Promise.resolve();
          if (refuse) throw new Error('applying greeting: refused');
        });
        ctx.ready();
        await once(ctx.signal, 'abort');
        s.ctxs.push(ctx);
      },
    });
    const done = runDaemon(s, ['--config', file], h.deps);
    await readied(h.sent);
    const readies = (): number => h.sent.filter((x) => x === 'READY=1').length;

    await writeFile(file, 'greeting = 3\n');
    h.signals.emit('SIGHUP');
    while (readies() < 2) await new Promise((res) => setImmediate(res));
    refuse = true;
    await writeFile(file, 'greeting = "two"\n');
    h.signals.emit('SIGHUP');
    while (readies() < 3) await new Promise((res) => setImmediate(res));
    h.signals.emit('SIGTERM');
    assert.equal(await done, 0);
    assert.equal(s.ctxs[0]?.config.greeting, 'one');
    const failures = h.records.filter((r) => /^reload failed/.test(String(r['msg'])));
    assert.equal(failures.length, 2);
    assert.equal(failures[0]?.['reason'], `${file}: greeting: expected string, got integer`);
    assert.equal(failures[1]?.['reason'], 'applying greeting: refused');
  });

  it('fails with exit 1 and one line on stderr when run() throws before READY', async () => {
    const h = harness();
    const s = spec({
      run: () => Promise.reject(new Error('listening on 0.0.0.0:1: permission denied')),
    });
    assert.equal(await runDaemon(s, ['--config', config], h.deps), 1);
    assert.equal(h.err(), 'testd: listening on 0.0.0.0:1: permission denied\n');
    assert.deepEqual(h.sent, []);
    const d = harness({ HOSTPLANE_DEBUG: '1' });
    assert.equal(await runDaemon(s, ['--config', config], d.deps), 1);
    assert.match(d.err(), /^testd: listening on .*\nError: listening on .*\n\s+at /);
  });

  it('returns 0 when run() finishes its work without a signal', async () => {
    const h = harness();
    const s = spec({ run: () => Promise.resolve() });
    assert.equal(await runDaemon(s, ['--config', config], h.deps), 0);
  });
});
