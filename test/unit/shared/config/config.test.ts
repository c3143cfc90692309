import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import {
  ConfigError,
  formatKeyPath,
  loadConfig,
  parseConfig,
  section,
  duration,
  byteSize,
  hostPort,
} from '../../../../shared/config/index.ts';

const FILE = '/etc/hostplane/x.toml';

const schema = z.strictObject({
  listen: hostPort().prefault('127.0.0.1:8080'),
  greeting: z.string().default('hello'),
  timeout: duration().prefault('10s'),
  limits: section({
    cpu_percent: z.number().min(1).max(100).default(50),
    memory: byteSize().prefault('512M'),
  }),
  peers: z.array(z.strictObject({ name: z.string(), weight: z.number().default(1) })).default([]),
});

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

describe('parseConfig', () => {
  it('gives every default for an empty file, including those of absent tables', () => {
    const c = parseConfig('', FILE, schema);
    assert.deepEqual(c, {
      listen: { host: '127.0.0.1', port: 8080 },
      greeting: 'hello',
      timeout: 10_000,
      limits: { cpu_percent: 50, memory: 512 * 1024 * 1024 },
      peers: [],
    });
  });

  it('converts the values an operator writes into what the daemon uses', () => {
    const c = parseConfig(
      'listen = "[::1]:443"\ntimeout = "1h30m"\n[limits]\nmemory = "64KiB"\n[[peers]]\nname = "a"\n',
      FILE,
      schema,
    );
    assert.deepEqual(c.listen, { host: '::1', port: 443 });
    assert.equal(c.timeout, 90 * 60_000);
    assert.equal(c.limits.memory, 65536);
    assert.equal(c.limits.cpu_percent, 50);
    assert.deepEqual(c.peers, [{ name: 'a', weight: 1 }]);
  });

  it('returns a deeply frozen value', () => {
    const c = parseConfig('[[peers]]\nname = "a"\n', FILE, schema);
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.limits));
    assert.ok(Object.isFrozen(c.peers));
    assert.ok(Object.isFrozen(c.peers[0]));
    assert.throws(() => {
      (c.limits as { cpu_percent: number }).cpu_percent = 3;
    }, TypeError);
  });

  it('reports a syntax error with file, line and column', () => {
    const e = configError(() => parseConfig('greeting = "x"\n\nlisten "a"\n', FILE, schema));
    assert.equal(e.kind, 'syntax');
    assert.equal(e.line, 3);
    assert.equal(e.column, 8);
    assert.match(e.message, /^\/etc\/hostplane\/x\.toml:3:8: syntax error: expected .*"=".*/);
  });

  it('reports a duplicate key by name', () => {
    const e = configError(() => parseConfig('greeting = "a"\ngreeting = "b"\n', FILE, schema));
    assert.equal(e.kind, 'syntax');
    assert.match(e.message, /^\/etc\/hostplane\/x\.toml(:\d+(:\d+)?)?: syntax error: .*'greeting'/);
  });

  it('reports a wrong type with the table and key path', () => {
    const e = configError(() => parseConfig('[limits]\ncpu_percent = "a lot"\n', FILE, schema));
    assert.equal(e.kind, 'invalid');
    assert.deepEqual(e.lines, [
      '/etc/hostplane/x.toml: [limits].cpu_percent: expected number, got string',
    ]);
    assert.deepEqual(e.issues[0]?.path, ['limits', 'cpu_percent']);
  });

  it('reports unknown keys at the top level and inside tables', () => {
    const e = configError(() =>
      parseConfig('lisen = "1.2.3.4:1"\n[limits]\ncpu = 3\n', FILE, schema),
    );
    assert.equal(e.kind, 'invalid');
    assert.deepEqual([...e.lines].sort(), [
      '/etc/hostplane/x.toml: unknown key "cpu" in [limits]',
      '/etc/hostplane/x.toml: unknown key "lisen" at top level',
    ]);
  });

  it('reports every schema problem, one line each', () => {
    const e = configError(() =>
      parseConfig(
        'listen = "nope"\ntimeout = "ten seconds"\nextra = 1\n[limits]\ncpu_percent = 500\n[[peers]]\nweight = 2\n',
        FILE,
        schema,
      ),
    );
    assert.equal(e.lines.length, 5, e.message);
    const text = e.message;
    assert.match(text, /^\/etc\/hostplane\/x\.toml: listen: expected host:port/m);
    assert.match(text, /^\/etc\/hostplane\/x\.toml: timeout: expected a duration/m);
    assert.match(text, /^\/etc\/hostplane\/x\.toml: unknown key "extra" at top level$/m);
    assert.match(text, /^\/etc\/hostplane\/x\.toml: \[limits\]\.cpu_percent: too big/m);
    assert.match(
      text,
      /^\/etc\/hostplane\/x\.toml: \[peers\[0\]\]\.name: required key is missing/m,
    );
  });

  it('rejects keys a non-strict nested schema would silently drop', () => {
    const loose = z.strictObject({ a: z.object({ b: z.number().default(1) }).prefault({}) });
    const e = configError(() => parseConfig('[a]\nc = 2\n', FILE, loose));
    assert.deepEqual(e.lines, ['/etc/hostplane/x.toml: unknown key "c" in [a]']);
  });
});

describe('formatKeyPath', () => {
  it('writes paths the way the TOML file spells them', () => {
    assert.equal(formatKeyPath([]), 'top level');
    assert.equal(formatKeyPath(['listen']), 'listen');
    assert.equal(formatKeyPath(['limits', 'cpu_percent']), '[limits].cpu_percent');
    assert.equal(formatKeyPath(['a', 'b', 'c']), '[a.b].c');
    assert.equal(formatKeyPath(['a', 'list', 2]), '[a].list[2]');
    assert.equal(formatKeyPath(['rules', 1, 'name']), '[rules[1]].name');
  });
});

describe('loadConfig', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hostplane-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads and validates a file', async () => {
    const file = path.join(dir, 'ok.toml');
    await writeFile(file, 'greeting = "hi"\n');
    const c = await loadConfig(file, schema);
    assert.equal(c.greeting, 'hi');
  });

  it('tells a missing file from an invalid one', async () => {
    const file = path.join(dir, 'absent.toml');
    await assert.rejects(loadConfig(file, schema), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.kind, 'missing');
      assert.equal(e.message, `${file}: no such file`);
      return true;
    });
    const bad = path.join(dir, 'bad.toml');
    await writeFile(bad, 'greeting = 3\n');
    await assert.rejects(loadConfig(bad, schema), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.kind, 'invalid');
      assert.equal(e.message, `${bad}: greeting: expected string, got integer`);
      return true;
    });
  });

  it('reports a file it cannot read as unreadable', async () => {
    // a directory is never readable as a file, even for root
    await assert.rejects(loadConfig(dir, schema), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.kind, 'unreadable');
      assert.match(e.message, /: cannot read: .*EISDIR/);
      return true;
    });
  });
});
