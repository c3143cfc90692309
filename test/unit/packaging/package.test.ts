// The pure parts of scripts/package.ts: package specs, control files, maintainer scripts, wrapper,
// man page, and the small parsers they rest on.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { createRunner } from '../../../shared/exec/index.ts';
import { silentLogger } from '../../../shared/log/index.ts';
import {
  architectureOf,
  bundledPackages,
  changelogDate,
  changelogVersion,
  controlText,
  dependsOf,
  libcDependency,
  loadFragments,
  loadSpecs,
  maintainerScripts,
  manPage,
  parseSpec,
  unitExecStart,
  wrapperScript,
  type PackageSpec,
} from '../../../scripts/package.ts';

const root = path.resolve(import.meta.dirname, '../../..');

const daemonSpec = (extra = ''): PackageSpec =>
  parseSpec(
    `kind = "daemon"
daemon = "demo-daemon"
section = "net"
summary = "a demo daemon"
description = """
First paragraph of the
long description.

Second paragraph."""
depends = ["hostplane-common (= \${binary:Version})", "iproute2"]
addons = ["sd-notify"]
state_dirs = ["/var/lib/hostplane/demo-daemon"]
${extra}`,
    '/x/packaging/deb/packages/hostplane-demo-daemon.toml',
  );

describe('package specs', () => {
  it('every spec in packaging/deb/packages parses', async () => {
    const specs = await loadSpecs();
    assert.ok(specs.some((s) => s.package === 'hostplane-cu-thor-server'));
    assert.ok(specs.some((s) => s.package === 'hostplane-common'));
  });

  it('every daemon or CLI folder with a main.ts has a package spec', async () => {
    const specs = await loadSpecs();
    const folders = (await readdir(path.join(root, 'daemons'))).filter((d) =>
      existsSync(path.join(root, 'daemons', d, 'main.ts')),
    );
    const missing = folders.filter((d) => !specs.some((s) => s.daemon === d));
    assert.deepEqual(missing, [], 'add packaging/deb/packages/hostplane-<name>.toml');
  });

  it('takes the package name from the file name', () => {
    assert.equal(daemonSpec().package, 'hostplane-demo-daemon');
  });

  it('rejects an unknown key, naming the file', () => {
    assert.throws(
      () => daemonSpec('colour = "blue"'),
      /hostplane-demo-daemon\.toml: unknown key.*colour/,
    );
  });

  it('rejects a daemon package without its daemons/ folder', () => {
    assert.throws(
      () =>
        parseSpec(
          'kind = "daemon"\nsection = "net"\nsummary = "x"\ndescription = "y"\n',
          'hostplane-x.toml',
        ),
      /hostplane-x\.toml: kind = "daemon" needs daemon =/,
    );
  });

  it('rejects a system user on a CLI package', () => {
    assert.throws(
      () =>
        parseSpec(
          'kind = "cli"\ndaemon = "x"\nsection = "net"\nsummary = "x"\ndescription = "y"\nuser = { name = "_x", comment = "x" }\n',
          'hostplane-x.toml',
        ),
      /only for kind = "daemon"/,
    );
  });
});

describe('control file', () => {
  it('depends on node, the addon libraries and the explicit packages at this version', () => {
    assert.deepEqual(dependsOf(daemonSpec(), '1.2.3-1'), [
      'nodejs (>= 20)',
      'libsystemd0 (>= 214)',
      'hostplane-common (= 1.2.3-1)',
      'iproute2',
    ]);
  });

  it('keeps only the newest libc6 that its ELF files and addons ask for', () => {
    const spec = { ...daemonSpec(), addons: ['sd-notify', 'node-pty'] } satisfies PackageSpec;
    const deps = dependsOf(spec, '1', ['libc6 (>= 2.4)', 'libc6 (>= 2.36)']);
    assert.deepEqual(
      deps.filter((d) => d.startsWith('libc6')),
      ['libc6 (>= 2.36)'],
    );
    assert.ok(deps.includes('libstdc++6 (>= 5)'), 'other dependencies stay');
  });

  it('needs sysusers for a package with a system user', () => {
    const spec = daemonSpec('user = { name = "_hostplane-demo", comment = "demo" }');
    assert.ok(dependsOf(spec, '1').includes('systemd | systemd-standalone-sysusers'));
  });

  it('is amd64 with native code inside and all without', () => {
    assert.equal(architectureOf(daemonSpec()), 'amd64');
    const cli = parseSpec(
      'kind = "cli"\ndaemon = "demo"\nsection = "admin"\nsummary = "s"\ndescription = "d"\n',
      'hostplane-demo.toml',
    );
    assert.equal(architectureOf(cli), 'all');
  });

  it('renders the fields in order with the long description folded Debian-style', () => {
    const text = controlText(daemonSpec(), {
      version: '0.1.0-1',
      installedSizeKiB: 42,
      extraDepends: ['libc6 (>= 2.34)'],
    });
    assert.equal(
      text,
      [
        'Package: hostplane-demo-daemon',
        'Version: 0.1.0-1',
        'Architecture: amd64',
        'Maintainer: hostplane developers <hostplane@lists.example.org>',
        'Installed-Size: 42',
        'Depends: libc6 (>= 2.34), nodejs (>= 20), libsystemd0 (>= 214), hostplane-common (= 0.1.0-1), iproute2',
        'Section: net',
        'Priority: optional',
        'Homepage: https://github.com/hostplane/hostplane',
        'Description: a demo daemon',
        ' First paragraph of the',
        ' long description.',
        ' .',
        ' Second paragraph.',
        '',
      ].join('\n'),
    );
  });
});

describe('maintainer scripts', () => {
  it('enable the unit on install, start nothing then, and try-restart on upgrade', async () => {
    const s = maintainerScripts(daemonSpec(), ['demo-daemon.service'], await loadFragments());
    assert.ok(s !== undefined);
    assert.match(s.postinst, /^#!\/bin\/sh\nset -e\n/);
    assert.match(s.postinst, /deb-systemd-helper enable 'demo-daemon\.service'/);
    assert.match(
      s.postinst,
      /if \[ -n "\$2" \]; then\n\s+deb-systemd-invoke try-restart 'demo-daemon\.service'/,
    );
    assert.doesNotMatch(s.postinst, /deb-systemd-invoke start/);
    assert.doesNotMatch(s.postinst, /systemd-sysusers/);
    assert.doesNotMatch(s.postinst, /#[A-Z_]+#/, 'every placeholder is filled');
  });

  it('stop the unit on remove and purge conffile backups, state and enable links', async () => {
    const s = maintainerScripts(daemonSpec(), ['demo-daemon.service'], await loadFragments());
    assert.ok(s !== undefined);
    assert.match(s.prerm, /"\$1" = remove .*\n\s+deb-systemd-invoke stop 'demo-daemon\.service'/);
    assert.match(s.postrm, /deb-systemd-helper purge 'demo-daemon\.service'/);
    assert.match(s.postrm, /rm -f \/etc\/hostplane\/demo-daemon\.toml\.dpkg-old /);
    assert.match(
      s.postrm,
      /for dir in '\/var\/lib\/hostplane\/demo-daemon'; do\n\s+rm -rf "\$dir"/,
    );
  });

  it('create the system user first when the package has one', async () => {
    const spec = daemonSpec('user = { name = "_hostplane-demo", comment = "demo" }');
    const s = maintainerScripts(spec, ['demo-daemon.service'], await loadFragments());
    assert.ok(s !== undefined);
    const sysusers = s.postinst.indexOf('systemd-sysusers');
    assert.ok(sysusers > 0 && sysusers < s.postinst.indexOf('deb-systemd-helper'));
    assert.match(s.postinst, /hostplane-demo-daemon\.conf/);
  });

  it('are valid sh', async () => {
    const s = maintainerScripts(daemonSpec(), ['demo-daemon.service'], await loadFragments());
    assert.ok(s !== undefined);
    const runner = createRunner({ log: silentLogger(), allow: ['/bin/sh'] });
    for (const text of [s.postinst, s.prerm, s.postrm]) {
      const r = await runner.run(['/bin/sh', '-n'], { input: text, okCodes: [0, 2] });
      assert.equal(r.code, 0, r.stderr);
    }
  });

  it('are none for a CLI package', async () => {
    const cli = parseSpec(
      'kind = "cli"\ndaemon = "demo"\nsection = "admin"\nsummary = "s"\ndescription = "d"\n',
      'hostplane-demo.toml',
    );
    assert.equal(maintainerScripts(cli, [], await loadFragments()), undefined);
  });
});

describe('small parsers', () => {
  it('finds the program of ExecStart= and refuses one outside /usr/bin and /usr/sbin', () => {
    assert.equal(
      unitExecStart('[Service]\nExecStart=/usr/bin/cu-thor-server --config x\n', 'u'),
      '/usr/bin/cu-thor-server',
    );
    assert.equal(unitExecStart('ExecStart=-/usr/sbin/demo\n', 'u'), '/usr/sbin/demo');
    assert.throws(
      () => unitExecStart('ExecStart=/opt/demo\n', 'u.service'),
      /u\.service: ExecStart= runs \/opt\/demo/,
    );
    assert.throws(() => unitExecStart('[Service]\n', 'u.service'), /u\.service: no ExecStart=/);
  });

  it('takes the newest GLIBC symbol version of a binary as the libc6 dependency', () => {
    const elf = Buffer.from(
      '\x7fELF....GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.4\0GLIBC_2.17\0',
      'latin1',
    );
    assert.equal(libcDependency(elf), 'libc6 (>= 2.34)');
    assert.equal(libcDependency(Buffer.from('\x7fELF static', 'latin1')), undefined);
  });

  it('lists the npm packages a bundle holds, scoped and nested ones included', () => {
    assert.deepEqual(
      bundledPackages([
        'daemons/cu-thor/main.ts',
        'node_modules/@grpc/grpc-js/build/src/index.js',
        'node_modules/@grpc/grpc-js/build/src/channel.js',
        'node_modules/pino/pino.js',
        'node_modules/a/node_modules/b/index.js',
      ]),
      ['node_modules/@grpc/grpc-js', 'node_modules/a/node_modules/b', 'node_modules/pino'],
    );
  });

  it('reads the version and date of the newest changelog entry', () => {
    const text =
      'hostplane (1.2.0-1) unstable; urgency=medium\n\n  * x\n\n -- A B <a@b.c>  Tue, 01 Dec 2026 10:00:00 +0000\n\nhostplane (1.1.0-1) unstable; urgency=medium\n';
    assert.equal(changelogVersion(text), '1.2.0-1');
    assert.equal(changelogDate(text), '2026-12-01');
    assert.throws(() => changelogVersion('nonsense'), /no "hostplane \(VERSION\)"/);
  });

  it('wraps the bundle with Debian node, passing every argument', () => {
    assert.equal(
      wrapperScript(daemonSpec()),
      '#!/bin/sh\n# demo-daemon (hostplane-demo-daemon): the esbuild bundle run by Debian\'s nodejs.\nexec /usr/bin/node /usr/lib/hostplane/demo-daemon/main.mjs "$@"\n',
    );
  });

  it("passes the spec's node options to node before the bundle, and refuses shell syntax", () => {
    assert.equal(
      wrapperScript(daemonSpec('node_options = ["--initial-old-space-size=64", "--no-warnings"]')),
      '#!/bin/sh\n# demo-daemon (hostplane-demo-daemon): the esbuild bundle run by Debian\'s nodejs.\nexec /usr/bin/node --initial-old-space-size=64 --no-warnings /usr/lib/hostplane/demo-daemon/main.mjs "$@"\n',
    );
    for (const bad of ['"--x=$(id)"', '"--x=a b"', '"-x"', '"--x=`id`"']) {
      assert.throws(() => daemonSpec(`node_options = [${bad}]`), /node_options/);
    }
  });

  it('writes a man page from --help with roff escapes', () => {
    const page = manPage(daemonSpec(), {
      section: 8,
      help: 'Usage: demo-daemon [--config PATH]\n.starts with a dot\nback\\slash',
      version: '0.1.0-1',
      date: '2026-11-23',
    });
    assert.match(page, /^\.TH DEMO\\-DAEMON 8 "2026-11-23" "hostplane 0\.1\.0-1" "hostplane"\n/);
    assert.match(page, /\n\.SH NAME\ndemo\\-daemon \\- a demo daemon\n/);
    assert.match(
      page,
      /\n\.nf\nUsage: demo\\-daemon \[\\-\\-config PATH\]\n\\&\.starts with a dot\nback\\eslash\n\.fi\n/,
    );
    assert.match(page, /\.I \/etc\/hostplane\/demo\\-daemon\.toml/);
  });
});
