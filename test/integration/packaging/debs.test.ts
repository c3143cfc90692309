// `scripts/package.ts` for real: builds the .debs into a temp directory, then checks them with
// dpkg-deb, lintian and `systemd-analyze verify` (the package's files overlaid on this host's
// /usr and /etc in a private mount namespace), and loads the shipped native addon.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRunner, findBinary } from '../../../shared/exec/index.ts';
import type { Runner } from '../../../shared/exec/types.ts';
import { silentLogger } from '../../../shared/log/index.ts';

const root = path.resolve(import.meta.dirname, '../../..');
const needed = ['dpkg-deb', 'strip', 'gcc', 'unshare', 'systemd-analyze'];
const found = await Promise.all(needed.map((b) => findBinary(b).catch(() => undefined)));
const skip =
  process.getuid?.() !== 0
    ? 'needs root (mount namespaces for systemd-analyze verify)'
    : found.includes(undefined)
      ? `needs ${needed.filter((_, i) => found[i] === undefined).join(', ')}`
      : false;
const lintian = await findBinary('lintian').catch(() => undefined);

describe('the built .deb packages', { skip, timeout: 600_000 }, () => {
  let out: string;
  let runner: Runner;
  let debs: string[];
  const bin: Record<string, string> = {};
  const deb = (pkg: string): string => {
    const d = debs.find((n) => n.startsWith(`${pkg}_`));
    assert.ok(d !== undefined, `${pkg} was built`);
    return path.join(out, d);
  };
  const contents = async (pkg: string): Promise<string[]> =>
    (await runner.run([bin['dpkg-deb']!, '-c', deb(pkg)])).stdout.trim().split('\n');

  before(async () => {
    for (const [i, b] of needed.entries()) bin[b] = found[i]!;
    out = await mkdtemp(path.join(tmpdir(), 'hostplane-debs-'));
    runner = createRunner({
      log: silentLogger(),
      allow: [process.execPath, ...Object.values(bin), ...(lintian !== undefined ? [lintian] : [])],
    });
    await runner.run(
      [process.execPath, '--import', 'tsx', path.join(root, 'scripts/package.ts'), '--out', out],
      { cwd: root, timeoutMs: 300_000 },
    );
    debs = (await readdir(out)).filter((n) => n.endsWith('.deb')).sort();
  });

  after(async () => {
    await rm(out, { recursive: true, force: true });
  });

  it('holds the bundle, wrapper, unit, conffile, addon, man page and docs of cu-thor-server', async () => {
    const lines = await contents('hostplane-cu-thor-server');
    const entries = new Map(lines.map((l) => [l.split(/\s+/).at(-1) ?? '', l]));
    for (const p of [
      './usr/lib/hostplane/cu-thor-server/main.mjs',
      './usr/lib/hostplane/cu-thor-server/node_modules/sd-notify/build/Release/notify.node',
      './usr/lib/systemd/system/cu-thor-server.service',
      './etc/hostplane/cu-thor-server.toml',
      './usr/share/man/man8/cu-thor-server.8.gz',
      './usr/share/doc/hostplane-cu-thor-server/changelog.Debian.gz',
      './usr/share/doc/hostplane-cu-thor-server/copyright',
    ]) {
      assert.ok(entries.has(p), `${p} in ${lines.join('\n')}`);
    }
    assert.match(entries.get('./usr/bin/cu-thor-server') ?? '', /^-rwxr-xr-x root\/root /);
    assert.match(
      entries.get('./usr/lib/hostplane/pagecache.node') ?? '',
      /^-rw-r--r-- root\/root /,
      'the page-cache addon, not executable',
    );
    for (const l of lines) assert.match(l, / root\/root /, 'owned by root');
    const conffiles = await runner.run([
      bin['dpkg-deb']!,
      '-I',
      deb('hostplane-cu-thor-server'),
      'conffiles',
    ]);
    assert.equal(conffiles.stdout, '/etc/hostplane/cu-thor-server.toml\n');
  });

  it('puts the shared protos and the namespace init in hostplane-common only', async () => {
    const common = (await contents('hostplane-common')).join('\n');
    assert.match(common, /\.\/usr\/lib\/hostplane\/hostplane-nsinit\n/);
    assert.match(common, /\.\/usr\/share\/hostplane\/proto\/jobexec\/v1\/jobexec\.proto/);
    for (const d of debs.filter((n) => !n.startsWith('hostplane-common_'))) {
      const files = (await runner.run([bin['dpkg-deb']!, '-c', path.join(out, d)])).stdout;
      assert.doesNotMatch(files, /\/usr\/share\/hostplane\/proto\/|hostplane-nsinit/, d);
    }
  });

  it(
    'has no lintian errors',
    { skip: lintian === undefined && 'lintian is not installed' },
    async () => {
      const r = await runner.run([lintian!, ...debs.map((d) => path.join(out, d))], {
        timeoutMs: 300_000,
        okCodes: [0, 1, 2],
      });
      const errors = r.stdout.split('\n').filter((l) => l.startsWith('E: '));
      assert.deepEqual(errors, []);
    },
  );

  it('passes systemd-analyze verify with the package files in place', async () => {
    for (const d of debs) {
      const stage = path.join(out, 'stage', d.split('_')[0]!);
      const unitDir = path.join(stage, 'usr/lib/systemd/system');
      if (!existsSync(unitDir)) continue;
      for (const unit of await readdir(unitDir)) {
        // overlay the package's /usr and /etc on the host's in a private mount namespace
        const mounts = ['usr', 'etc']
          .filter((top) => existsSync(path.join(stage, top)))
          .map((top) => `mount -t overlay overlay -o lowerdir=${stage}/${top}:/${top} /${top}`);
        const r = await runner.run(
          [
            bin['unshare']!,
            '--mount',
            '/bin/sh',
            '-c',
            `${mounts.join(' && ')} && exec ${bin['systemd-analyze']!} verify /usr/lib/systemd/system/${unit}`,
          ],
          { okCodes: [0, 1], timeoutMs: 120_000 },
        );
        assert.equal(r.code, 0, `${unit}: ${r.stderr}`);
        assert.equal(r.stderr.trim(), '', `${unit}: ${r.stderr}`);
      }
    }
  });

  it('ships an sd-notify addon that loads from beside the bundle', async () => {
    const addon = path.join(
      out,
      'stage/hostplane-cu-thor-server/usr/lib/hostplane/cu-thor-server/node_modules/sd-notify',
    );
    const r = await runner.run([
      process.execPath,
      '-e',
      `const n = require(${JSON.stringify(addon)}); if (typeof n.ready !== 'function') process.exit(1)`,
    ]);
    assert.equal(r.code, 0, r.stderr);
  });

  it('ships a page-cache addon that loads and drops a written file from the cache', async () => {
    const addon = path.join(out, 'stage/hostplane-cu-thor-server/usr/lib/hostplane/pagecache.node');
    const file = path.join(out, 'pagecache-probe');
    const r = await runner.run([
      process.execPath,
      '-e',
      `const fs = require('fs'); const a = require(${JSON.stringify(addon)});
       const fd = fs.openSync(${JSON.stringify(file)}, 'w'); fs.writeSync(fd, Buffer.alloc(1 << 20, 1));
       a.dropBehind(fd, 0, 1 << 20, (err) => { if (err) { console.error(err.message); process.exit(1); } });`,
    ]);
    assert.equal(r.code, 0, r.stderr);
  });

  it('ships a CLI bundle that runs from its installed layout', async () => {
    const r = await runner.run([
      process.execPath,
      path.join(out, 'stage/hostplane-cu-thor/usr/lib/hostplane/cu-thor/main.mjs'),
      '--help',
    ]);
    assert.match(r.stdout, /^Usage: cu-thor <command>/);
  });
});
