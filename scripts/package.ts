// `npm run package`: one Debian package per daemon or CLI (plus hostplane-common) in dist/deb/,
// staged from packaging/deb/ and the esbuild bundles, built with `dpkg-deb --root-owner-group`.
//   tsx scripts/package.ts [--no-build] [--lint] [--out DIR] [PACKAGE...]
// A package whose inputs are not in the checkout yet (daemons/<d>/main.ts, systemd/<d>.service,
// etc/hostplane/<d>.toml) is skipped with a note, so a new daemon is packaged once it lands.
// See docs/packaging.md.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { z } from 'zod';
import { parseConfig } from '../shared/config/index.ts';
import { createRunner, findBinary } from '../shared/exec/index.ts';
import type { Runner } from '../shared/exec/types.ts';
import { createLogger } from '../shared/log/index.ts';
import { kindFlags } from '../shared/native/build.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
export const PACKAGING_DIR = path.join(ROOT, 'packaging', 'deb');
export const MAINTAINER = 'hostplane developers <hostplane@lists.example.org>';
export const HOMEPAGE = 'https://github.com/hostplane/hostplane';

const debName = z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'expected a Debian package name');
const daemonName = z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a daemons/<name> folder');
const absPath = z.string().regex(/^\/[^\0]*$/, 'expected an absolute path');

/** packaging/deb/packages/<package>.toml: what one package holds besides the conventions. */
export const specSchema = z.strictObject({
  /** daemon: bundle + wrapper + unit + conffile; cli: bundle + /usr/bin wrapper; files: only `files` */
  kind: z.enum(['daemon', 'cli', 'files']),
  /** daemons/<daemon>/main.ts (daemon and cli) */
  daemon: daemonName.optional(),
  section: z.enum(['admin', 'net', 'utils']),
  summary: z.string().min(1).max(80),
  description: z.string().min(1),
  /** beyond what is added automatically: nodejs (>= 20) for a bundle, the addons' libraries */
  depends: z.array(z.string().min(1)).default([]),
  addons: z.array(z.enum(['sd-notify', 'node-pty'])).default([]),
  /** removed on purge (the unit's StateDirectory=) */
  state_dirs: z.array(absPath).default([]),
  /** a system user for a daemon that needs no root (systemd-sysusers) */
  user: z
    .strictObject({ name: z.string().regex(/^_?[a-z][a-z0-9-]*$/), comment: z.string() })
    .optional(),
  /** a sysusers.d file in the checkout (a user several packages share), instead of `user` */
  sysusers: z.string().min(1).optional(),
  /** extra files: `from` (checkout-relative file or directory) to `to` (absolute) */
  files: z
    .array(
      z.strictObject({
        from: z.string().min(1),
        to: absPath,
        mode: z.number().int().min(0).max(0o7777).optional(),
        strip: z.boolean().default(false),
      }),
    )
    .default([]),
  /** checkout scripts run (`node --import tsx SCRIPT OUT`) before staging, e.g. a browser UI */
  build: z.array(z.strictObject({ script: z.string().min(1), out: z.string().min(1) })).default([]),
  /** options for node in the wrapper, before the bundle (V8 heap tuning, say); `--name` or
   * `--name=value`, nothing a shell would expand */
  node_options: z
    .array(
      z.string().regex(/^--[a-z0-9-]+(=[A-Za-z0-9._,:/+-]+)?$/, 'expected --name or --name=value'),
    )
    .default([]),
  /** C compiled for the package (hardened, dynamic): `source` to the absolute `to`; a program, or
   * with `addon` a Node-API shared object the daemon loads */
  native: z
    .array(
      z.strictObject({
        source: z.string().min(1),
        to: absPath,
        addon: z.boolean().default(false),
      }),
    )
    .default([]),
});

export type PackageSpec = z.output<typeof specSchema> & { package: string };

/** Parses and checks one spec file's text; `file` names it in errors. */
export function parseSpec(text: string, file: string): PackageSpec {
  const spec = parseConfig(text, file, specSchema) as z.output<typeof specSchema>;
  const pkg = path.basename(file, '.toml');
  debName.parse(pkg);
  if (spec.kind !== 'files' && spec.daemon === undefined) {
    throw new Error(`${file}: kind = "${spec.kind}" needs daemon = "<daemons/ folder>"`);
  }
  if (
    spec.kind !== 'daemon' &&
    (spec.user !== undefined || spec.sysusers !== undefined || spec.state_dirs.length > 0)
  ) {
    throw new Error(`${file}: user, sysusers and state_dirs are only for kind = "daemon"`);
  }
  if (spec.user !== undefined && spec.sysusers !== undefined) {
    throw new Error(`${file}: give user or sysusers, not both`);
  }
  return { ...spec, package: pkg };
}

/** Every spec under packaging/deb/packages/, sorted by package name. */
export async function loadSpecs(
  dir = path.join(PACKAGING_DIR, 'packages'),
): Promise<PackageSpec[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.toml')).sort();
  return Promise.all(
    names.map(async (n) => parseSpec(await readFile(path.join(dir, n), 'utf8'), path.join(dir, n))),
  );
}

/** A native addon: the files copied into node_modules/ beside the bundle, and what they link. */
export interface Addon {
  /** node_modules/<package>/<file> the addon needs at run time; the .node files get stripped */
  files: readonly string[];
  /** the shared libraries its .node file links (objdump -p NEEDED), as Debian dependencies */
  depends: readonly string[];
  /** lintian tags that are wrong about it, with the reason (a lintian overrides file) */
  overrides?: readonly { tag: string; why: string }[];
}

const NODE_PTY_LIB = [
  'index',
  'terminal',
  'unixTerminal',
  'utils',
  'eventEmitter2',
  'types',
  'interfaces',
];

export const ADDONS: Readonly<Record<'sd-notify' | 'node-pty', Addon>> = {
  'sd-notify': {
    // sd-notify loads its .node through `bindings`, which needs file-uri-to-path
    files: [
      'sd-notify/package.json',
      'sd-notify/index.js',
      'sd-notify/build/Release/notify.node',
      'bindings/package.json',
      'bindings/bindings.js',
      'file-uri-to-path/package.json',
      'file-uri-to-path/index.js',
    ],
    depends: ['libsystemd0 (>= 214)'],
    overrides: [
      {
        tag: 'library-not-linked-against-libc [usr/lib/hostplane/*/node_modules/sd-notify/build/Release/notify.node]',
        why: 'notify.node calls only libsystemd (sd_notify, sd_journal_print) and no libc function; node, which loads it, has libc',
      },
    ],
  },
  'node-pty': {
    files: [
      'node-pty/package.json',
      'node-pty/build/Release/pty.node',
      ...NODE_PTY_LIB.map((n) => `node-pty/lib/${n}.js`),
    ],
    depends: ['libc6 (>= 2.34)', 'libgcc-s1 (>= 3.0)', 'libstdc++6 (>= 5)'],
  },
};

/** gcc flags for a packaged program, or for an addon (a shared object: PIC, not PIE). */
export function nativeFlags(addon: boolean): string[] {
  if (!addon) return [...HARDENING_FLAGS];
  return [
    ...HARDENING_FLAGS.filter((f) => f !== '-fPIE' && f !== '-pie'),
    ...kindFlags('addon', false),
  ];
}

/** The newest GLIBC_x.y symbol version an ELF file references, as `libc6 (>= x.y)`. */
export function libcDependency(elf: Buffer): string | undefined {
  let best: [number, number] | undefined;
  for (const m of elf.toString('latin1').matchAll(/GLIBC_(\d+)\.(\d+)/g)) {
    const v: [number, number] = [Number(m[1]), Number(m[2])];
    if (best === undefined || v[0] > best[0] || (v[0] === best[0] && v[1] > best[1])) best = v;
  }
  return best === undefined ? undefined : `libc6 (>= ${best[0]}.${best[1]})`;
}

/** Debian's default hardening build flags (dpkg-buildflags on amd64, hardening=+all). */
export const HARDENING_FLAGS = [
  '-O2',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-std=gnu11',
  '-fstack-protector-strong',
  '-fstack-clash-protection',
  '-fcf-protection',
  '-Wformat',
  '-Werror=format-security',
  '-D_FORTIFY_SOURCE=2',
  '-fPIE',
  '-pie',
  '-Wl,-z,relro',
  '-Wl,-z,now',
];

/** The Debian version of the newest changelog entry (`hostplane (0.1.0-1) unstable; ...`). */
export function changelogVersion(changelog: string): string {
  const m = /^hostplane \(([^)\s]+)\) /.exec(changelog);
  if (m?.[1] === undefined)
    throw new Error('reading packaging/deb/changelog: no "hostplane (VERSION)" first line');
  return m[1];
}

/** The absolute program of a unit's ExecStart= (prefixes like `-`/`!` stripped). */
export function unitExecStart(unit: string, file: string): string {
  const m = /^ExecStart=[-@:+!]*(\S+)/m.exec(unit);
  if (m?.[1] === undefined) throw new Error(`${file}: no ExecStart=`);
  if (!/^\/usr\/s?bin\/[a-z0-9-]+$/.test(m[1])) {
    throw new Error(
      `${file}: ExecStart= runs ${m[1]}; packages install wrappers in /usr/bin or /usr/sbin`,
    );
  }
  return m[1];
}

/** Depends: explicit ones plus nodejs and the addons' libraries, without duplicates. */
export function dependsOf(
  spec: PackageSpec,
  version: string,
  extra: readonly string[] = [],
): string[] {
  const out: string[] = [...extra];
  if (spec.kind !== 'files') out.push('nodejs (>= 20)');
  for (const a of spec.addons) out.push(...ADDONS[a].depends);
  if (hasSysusers(spec)) out.push('systemd | systemd-standalone-sysusers');
  out.push(...spec.depends.map((d) => d.replaceAll('${binary:Version}', version)));
  return newestLibcOnly([...new Set(out)]);
}

/** Keeps one `libc6 (>= x.y)`, the newest, where several ELF files and addons each ask for one. */
function newestLibcOnly(deps: string[]): string[] {
  const version = (d: string): number[] | undefined =>
    /^libc6 \(>= (\d+)\.(\d+)\)$/.exec(d)?.slice(1).map(Number);
  let newest: string | undefined;
  for (const d of deps) {
    const v = version(d);
    const n = newest === undefined ? undefined : version(newest);
    if (v !== undefined && (n === undefined || v[0]! > n[0]! || (v[0] === n[0] && v[1]! > n[1]!))) {
      newest = d;
    }
  }
  return deps.filter((d) => version(d) === undefined || d === newest);
}

/** Whether the package creates a system user (its own `user`, or a shared sysusers file). */
export function hasSysusers(spec: PackageSpec): boolean {
  return spec.user !== undefined || spec.sysusers !== undefined;
}

/** Architecture: amd64 when the package carries native code, else all. */
export function architectureOf(spec: PackageSpec): 'amd64' | 'all' {
  return spec.addons.length > 0 || spec.native.length > 0 || spec.files.some((f) => f.strip)
    ? 'amd64'
    : 'all';
}

/** The DEBIAN/control text. */
export function controlText(
  spec: PackageSpec,
  f: { version: string; installedSizeKiB: number; extraDepends?: readonly string[] },
): string {
  const depends = dependsOf(spec, f.version, f.extraDepends);
  const long = spec.description
    .trim()
    .split('\n')
    .map((l) => (l.trim() === '' ? ' .' : ` ${l.trimEnd()}`))
    .join('\n');
  return [
    `Package: ${spec.package}`,
    `Version: ${f.version}`,
    `Architecture: ${architectureOf(spec)}`,
    `Maintainer: ${MAINTAINER}`,
    `Installed-Size: ${f.installedSizeKiB}`,
    ...(depends.length > 0 ? [`Depends: ${depends.join(', ')}`] : []),
    `Section: ${spec.section}`,
    'Priority: optional',
    `Homepage: ${HOMEPAGE}`,
    `Description: ${spec.summary}`,
    long,
    '',
  ].join('\n');
}

export interface MaintainerScripts {
  postinst: string;
  prerm: string;
  postrm: string;
}

/** The fragments in packaging/deb/maintscripts/, by file name. */
export async function loadFragments(
  dir = path.join(PACKAGING_DIR, 'maintscripts'),
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of await readdir(dir)) out[n] = await readFile(path.join(dir, n), 'utf8');
  return out;
}

/**
 * postinst/prerm/postrm of a daemon package, composed from the fragments the way
 * dh_installsystemd and dh_installsysusers would: enable on install (not started: it needs the
 * operator's config), try-restart on upgrade, stop on remove, purge config backups and state.
 */
export function maintainerScripts(
  spec: PackageSpec,
  units: readonly string[],
  fragments: Readonly<Record<string, string>>,
): MaintainerScripts | undefined {
  if (spec.kind !== 'daemon' || spec.daemon === undefined) return undefined;
  const main = units.find((u) => u.endsWith('.service')) ?? units[0];
  if (main === undefined) throw new Error(`${spec.package}: a daemon package needs a unit`);
  const frag = (name: string): string => {
    const text = fragments[name];
    if (text === undefined) throw new Error(`packaging/deb/maintscripts/${name} is missing`);
    return text
      .replaceAll('#UNITFILE#', `'${main}'`)
      .replaceAll('#UNITFILES#', units.map((u) => `'${u}'`).join(' '))
      .replaceAll('#SYSUSERS_CONF#', `${spec.package}.conf`)
      .replaceAll('#CONFFILE#', `/etc/hostplane/${spec.daemon ?? ''}.toml`)
      .replaceAll('#PURGE_DIRS#', spec.state_dirs.map((d) => `'${d}'`).join(' '));
  };
  const script = (parts: readonly string[]): string =>
    ['#!/bin/sh', 'set -e', '', ...parts.map((p) => frag(p)), 'exit 0', ''].join('\n');
  return {
    postinst: script([
      ...(hasSysusers(spec) ? ['postinst-sysusers'] : []),
      'postinst-systemd-enable',
      'postinst-systemd-restartnostart',
    ]),
    prerm: script(['prerm-systemd-stop']),
    postrm: script(['postrm-systemd', 'postrm-purge']),
  };
}

/** /usr/bin/<cli> or the unit's ExecStart: run the bundle with Debian's node. */
export function wrapperScript(spec: PackageSpec): string {
  const d = spec.daemon ?? '';
  return [
    '#!/bin/sh',
    `# ${d} (${spec.package}): the esbuild bundle run by Debian's nodejs.`,
    `exec ${['/usr/bin/node', ...spec.node_options, `/usr/lib/hostplane/${d}/main.mjs`].join(' ')} "$@"`,
    '',
  ].join('\n');
}

/** sysusers.d line for the package's system user (no login, no home). */
export function sysusersText(spec: PackageSpec): string | undefined {
  if (spec.user === undefined) return undefined;
  return `# ${spec.package}: the daemon runs as this user (User= in its unit).\nu ${spec.user.name} - "${spec.user.comment}" /nonexistent /usr/sbin/nologin\n`;
}

const roffEscape = (line: string): string => {
  const s = line.replaceAll('\\', '\\e').replaceAll('-', '\\-');
  return /^[.']/.test(s) ? `\\&${s}` : s;
};

/** A man page made from `--help` (section 8 for daemons, 1 for CLIs). */
export function manPage(
  spec: PackageSpec,
  f: { section: 1 | 8; help: string; version: string; date: string },
): string {
  const d = spec.daemon ?? spec.package;
  const lines = [
    `.TH ${d.toUpperCase().replaceAll('-', '\\-')} ${f.section} "${f.date}" "hostplane ${f.version}" "hostplane"`,
    '.SH NAME',
    `${roffEscape(d)} \\- ${roffEscape(spec.summary)}`,
    '.SH DESCRIPTION',
    ...spec.description
      .trim()
      .split(/\n\s*\n/)
      .flatMap((para, i) => [...(i > 0 ? ['.PP'] : []), ...para.split('\n').map(roffEscape)]),
    '.SH USAGE',
    '.nf',
    ...f.help.trimEnd().split('\n').map(roffEscape),
    '.fi',
  ];
  if (spec.kind === 'daemon') {
    lines.push(
      '.SH FILES',
      `.I /etc/hostplane/${roffEscape(d)}.toml`,
      '.br',
      `.I /usr/lib/systemd/system/${roffEscape(d)}.service`,
      '.SH SEE ALSO',
      '.BR systemctl (1),',
      '.BR journalctl (1)',
    );
  }
  return lines.join('\n') + '\n';
}

/** One file in a staged package tree. */
export interface StagedFile {
  /** absolute path in the installed system */
  to: string;
  /** checkout file to copy, or the content itself */
  from: { file: string } | { text: string | Buffer };
  mode: number;
  strip?: boolean;
}

async function walk(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p, base)));
    else if (e.isFile()) out.push(path.relative(base, p));
  }
  return out.sort();
}

/** npm packages an esbuild metafile says a bundle holds: their node_modules folders. */
export function bundledPackages(metaInputs: readonly string[]): string[] {
  const dirs = new Set<string>();
  for (const input of metaInputs) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m?.[1] !== undefined) dirs.add(m[1]);
  }
  return [...dirs].sort();
}

/** The third-party license notices of the npm packages in a package (bundle + addons). */
async function thirdPartyLicenses(root: string, pkgDirs: readonly string[]): Promise<string> {
  const parts: string[] = [
    'Third-party npm packages in this package (bundled into main.mjs, or copied into',
    'node_modules/ as native addons), each with its license text.',
    '',
  ];
  for (const dir of pkgDirs) {
    const abs = path.join(root, dir);
    const pj = JSON.parse(await readFile(path.join(abs, 'package.json'), 'utf8')) as {
      name?: string;
      version?: string;
      license?: string;
    };
    const licenseFile = (await readdir(abs)).find((n) => /^(licen[sc]e|copying)(\.|$)/i.test(n));
    const text =
      licenseFile !== undefined
        ? await readFile(path.join(abs, licenseFile), 'utf8')
        : `(no license file in the package; package.json says ${pj.license ?? 'nothing'})`;
    parts.push(
      '='.repeat(78),
      `${pj.name ?? dir} ${pj.version ?? ''}  License: ${pj.license ?? 'unknown'}`,
      '='.repeat(78),
      text.trimEnd(),
      '',
    );
  }
  return parts.join('\n');
}

export interface PlanContext {
  root: string;
  version: string;
  /** `--help` output of the bundle (for the man page) */
  help: (daemon: string) => Promise<string>;
  fragments: Readonly<Record<string, string>>;
  /** compiles a checkout C file for the package; resolves to the built binary */
  native: (source: string, name: string, addon: boolean) => Promise<string>;
}

/** Why a package cannot be built from this checkout yet, or undefined when it can. */
export function missingInputs(spec: PackageSpec, root: string): string | undefined {
  const need: string[] = [];
  if (spec.daemon !== undefined) need.push(`daemons/${spec.daemon}/main.ts`);
  if (spec.kind === 'daemon' && spec.daemon !== undefined) {
    need.push(`systemd/${spec.daemon}.service`, `etc/hostplane/${spec.daemon}.toml`);
  }
  const missing = need.filter((p) => !existsSync(path.join(root, p)));
  return missing.length > 0 ? `${missing.join(', ')} not in the checkout yet` : undefined;
}

/** Everything a package installs, plus its control data (conffiles, maintainer scripts). */
export async function planPackage(
  spec: PackageSpec,
  ctx: PlanContext,
): Promise<{ files: StagedFile[]; conffiles: string[]; scripts: MaintainerScripts | undefined }> {
  const { root } = ctx;
  const files: StagedFile[] = [];
  const conffiles: string[] = [];
  const doc = `/usr/share/doc/${spec.package}`;
  let units: string[] = [];
  const licensePkgs: string[] = [];

  if (spec.daemon !== undefined) {
    const d = spec.daemon;
    const lib = `/usr/lib/hostplane/${d}`;
    files.push({
      to: `${lib}/main.mjs`,
      from: { file: path.join(root, 'dist', d, 'main.mjs') },
      mode: 0o644,
    });
    const meta = JSON.parse(await readFile(path.join(root, 'dist', d, 'meta.json'), 'utf8')) as {
      inputs: Record<string, unknown>;
    };
    licensePkgs.push(...bundledPackages(Object.keys(meta.inputs)));
    const overrides: string[] = [];
    for (const a of spec.addons) {
      for (const rel of ADDONS[a].files) {
        licensePkgs.push(`node_modules/${rel.split('/')[0] ?? rel}`);
        files.push({
          to: `${lib}/node_modules/${rel}`,
          from: { file: path.join(root, 'node_modules', rel) },
          mode: 0o644,
          strip: rel.endsWith('.node'),
        });
      }
      for (const o of ADDONS[a].overrides ?? []) overrides.push(`# ${o.why}`, o.tag);
    }
    if (overrides.length > 0) {
      files.push({
        to: `/usr/share/lintian/overrides/${spec.package}`,
        from: { text: overrides.join('\n') + '\n' },
        mode: 0o644,
      });
    }
    let bin = `/usr/bin/${d}`;
    if (spec.kind === 'daemon') {
      units = (await readdir(path.join(root, 'systemd')))
        .filter((n) => n.startsWith(`${d}.`) || n.startsWith(`${d}@.`))
        .sort();
      const service = `${d}.service`;
      const unitText = await readFile(path.join(root, 'systemd', service), 'utf8');
      bin = unitExecStart(unitText, `systemd/${service}`);
      for (const u of units) {
        files.push({
          to: `/usr/lib/systemd/system/${u}`,
          from: { file: path.join(root, 'systemd', u) },
          mode: 0o644,
        });
      }
      const conf = `/etc/hostplane/${d}.toml`;
      files.push({
        to: conf,
        from: { file: path.join(root, 'etc', 'hostplane', `${d}.toml`) },
        mode: 0o644,
      });
      conffiles.push(conf);
      const sysusers =
        spec.sysusers !== undefined
          ? await readFile(path.join(root, spec.sysusers), 'utf8')
          : sysusersText(spec);
      if (sysusers !== undefined) {
        files.push({
          to: `/usr/lib/sysusers.d/${spec.package}.conf`,
          from: { text: sysusers },
          mode: 0o644,
        });
      }
    }
    files.push({ to: bin, from: { text: wrapperScript(spec) }, mode: 0o755 });
    const section = bin.startsWith('/usr/sbin/') || spec.kind === 'daemon' ? 8 : 1;
    const man = manPage(spec, {
      section,
      help: await ctx.help(d),
      version: ctx.version,
      date: changelogDate(await readFile(path.join(PACKAGING_DIR, 'changelog'), 'utf8')),
    });
    files.push({
      to: `/usr/share/man/man${section}/${d}.${section}.gz`,
      from: { text: gzipSync(man, { level: 9 }) },
      mode: 0o644,
    });
  }

  for (const f of spec.files) {
    const src = path.join(root, f.from);
    const st = await stat(src).catch((cause: unknown) => {
      throw new Error(`${spec.package}: staging ${f.from}: ${String(cause)}`, { cause });
    });
    if (st.isDirectory()) {
      for (const rel of await walk(src)) {
        files.push({
          to: path.posix.join(f.to, rel),
          from: { file: path.join(src, rel) },
          mode: f.mode ?? 0o644,
          strip: f.strip,
        });
      }
    } else {
      files.push({ to: f.to, from: { file: src }, mode: f.mode ?? 0o644, strip: f.strip });
    }
  }

  for (const n of spec.native) {
    files.push({
      to: n.to,
      from: { file: await ctx.native(n.source, path.basename(n.to), n.addon) },
      mode: n.addon ? 0o644 : 0o755,
      strip: true,
    });
  }

  const changelog = await readFile(path.join(PACKAGING_DIR, 'changelog'));
  files.push({
    to: `${doc}/changelog.Debian.gz`,
    from: { text: gzipSync(changelog, { level: 9 }) },
    mode: 0o644,
  });
  files.push({
    to: `${doc}/copyright`,
    from: { file: path.join(PACKAGING_DIR, 'copyright') },
    mode: 0o644,
  });
  if (licensePkgs.length > 0) {
    const text = await thirdPartyLicenses(root, [...new Set(licensePkgs)].sort());
    files.push({
      to: `${doc}/third-party-licenses.txt.gz`,
      from: { text: gzipSync(text, { level: 9 }) },
      mode: 0o644,
    });
  }
  return { files, conffiles, scripts: maintainerScripts(spec, units, ctx.fragments) };
}

/** The changelog trailer's date as YYYY-MM-DD (for man pages: reproducible, not "today"). */
export function changelogDate(changelog: string): string {
  const m = /^ -- .+> {2}(.+)$/m.exec(changelog);
  const d = m?.[1] !== undefined ? new Date(m[1]) : undefined;
  if (d === undefined || Number.isNaN(d.getTime()))
    throw new Error('reading packaging/deb/changelog: no trailer date');
  return d.toISOString().slice(0, 10);
}

interface BuildTools {
  runner: Runner;
  dpkgDeb: string;
  strip: string;
  gcc: string;
}

/** Stages `plan` under `stage` and builds `out` with dpkg-deb; returns the .deb's path. */
async function buildDeb(
  spec: PackageSpec,
  plan: Awaited<ReturnType<typeof planPackage>>,
  version: string,
  stage: string,
  outDir: string,
  tools: BuildTools,
): Promise<string> {
  await rm(stage, { recursive: true, force: true });
  const md5: string[] = [];
  const extraDepends: string[] = [];
  let kib = 0;
  for (const f of plan.files) {
    const dest = path.join(stage, f.to);
    await mkdir(path.dirname(dest), { recursive: true, mode: 0o755 });
    if ('file' in f.from) await copyFile(f.from.file, dest);
    else await writeFile(dest, f.from.text);
    await chmod(dest, f.mode);
    if (f.strip === true) {
      await tools.runner.run(
        [
          tools.strip,
          '--strip-unneeded',
          '--remove-section=.comment',
          '--remove-section=.note',
          dest,
        ],
        { timeoutMs: 60_000 },
      );
    }
    const data = await readFile(dest);
    kib += Math.ceil(data.length / 1024);
    // programs and shared objects (addons are 0644) alike
    if (data.subarray(0, 4).equals(Buffer.from('\x7fELF', 'latin1'))) {
      const libc = libcDependency(data);
      if (libc !== undefined) extraDepends.push(libc);
    }
    if (!plan.conffiles.includes(f.to)) {
      md5.push(`${createHash('md5').update(data).digest('hex')}  ${f.to.slice(1)}`);
    }
  }
  const debian = path.join(stage, 'DEBIAN');
  await mkdir(debian, { recursive: true, mode: 0o755 });
  await writeFile(
    path.join(debian, 'control'),
    controlText(spec, { version, installedSizeKiB: kib, extraDepends }),
  );
  await writeFile(
    path.join(debian, 'md5sums'),
    md5.sort((a, b) => a.slice(34).localeCompare(b.slice(34))).join('\n') + '\n',
  );
  if (plan.conffiles.length > 0) {
    await writeFile(path.join(debian, 'conffiles'), plan.conffiles.join('\n') + '\n');
  }
  if (plan.scripts !== undefined) {
    for (const name of ['postinst', 'prerm', 'postrm'] as const) {
      await writeFile(path.join(debian, name), plan.scripts[name], { mode: 0o755 });
      await chmod(path.join(debian, name), 0o755);
    }
  }
  // every directory 0755 whatever the umask of whoever runs this
  const fixDirs = async (dir: string): Promise<void> => {
    await chmod(dir, 0o755);
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) await fixDirs(path.join(dir, e.name));
    }
  };
  await fixDirs(stage);
  const out = path.join(outDir, `${spec.package}_${version}_${architectureOf(spec)}.deb`);
  await tools.runner.run([tools.dpkgDeb, '--root-owner-group', '-Zxz', '--build', stage, out], {
    timeoutMs: 300_000,
  });
  return out;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'no-build': { type: 'boolean', default: false },
      lint: { type: 'boolean', default: false },
      out: { type: 'string', default: path.join(ROOT, 'dist', 'deb') },
    },
  });
  const log = createLogger({ name: 'package', level: 'warn' });
  const node = process.execPath;
  const tools: BuildTools = {
    dpkgDeb: await findBinary('dpkg-deb'),
    strip: await findBinary('strip'),
    gcc: await findBinary('gcc'),
    runner: undefined as unknown as Runner, // set just below, once the allowlist is known
  };
  const lintian = values.lint ? await findBinary('lintian') : undefined;
  tools.runner = createRunner({
    log,
    allow: [
      node,
      tools.dpkgDeb,
      tools.strip,
      tools.gcc,
      ...(lintian !== undefined ? [lintian] : []),
    ],
  });
  const { runner } = tools;

  const changelog = await readFile(path.join(PACKAGING_DIR, 'changelog'), 'utf8');
  const version = changelogVersion(changelog);
  const npmVersion = (
    JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }
  ).version;
  if (!version.startsWith(`${npmVersion}-`)) {
    throw new Error(
      `packaging/deb/changelog is at ${version} but package.json at ${npmVersion}: add a changelog entry`,
    );
  }

  const all = await loadSpecs();
  const unknown = positionals.filter((p) => !all.some((s) => s.package === p));
  if (unknown.length > 0)
    throw new Error(`no packaging/deb/packages/ spec for ${unknown.join(', ')}`);
  const chosen = all.filter((s) => positionals.length === 0 || positionals.includes(s.package));
  const ready: PackageSpec[] = [];
  for (const s of chosen) {
    const why = missingInputs(s, ROOT);
    if (why === undefined) ready.push(s);
    else process.stderr.write(`package: skipping ${s.package}: ${why}\n`);
  }

  if (!values['no-build']) {
    const daemons = ready.flatMap((s) => (s.daemon !== undefined ? [s.daemon] : []));
    const t0 = performance.now();
    await runner.run(
      [node, '--import', 'tsx', path.join(ROOT, 'scripts', 'build.ts'), ...daemons],
      { cwd: ROOT, timeoutMs: 300_000 },
    );
    for (const b of ready.flatMap((s) => s.build)) {
      await runner.run(
        [node, '--import', 'tsx', path.join(ROOT, b.script), path.join(ROOT, b.out)],
        {
          cwd: ROOT,
          timeoutMs: 300_000,
        },
      );
    }
    process.stderr.write(`package: bundles built in ${Math.round(performance.now() - t0)} ms\n`);
  }

  const outDir = path.resolve(values.out);
  await mkdir(outDir, { recursive: true });
  // old versions of the packages we build would be installed together by `apt install ./*.deb`
  for (const n of await readdir(outDir)) {
    if (n.endsWith('.deb') && ready.some((s) => n.startsWith(`${s.package}_`)))
      await rm(path.join(outDir, n));
  }
  const fragments = await loadFragments();
  const nativeDir = path.join(outDir, 'native');
  await mkdir(nativeDir, { recursive: true });
  const ctx: PlanContext = {
    root: ROOT,
    version,
    fragments,
    native: async (source, name, addon) => {
      const out = path.join(nativeDir, name);
      await runner.run([tools.gcc, ...nativeFlags(addon), '-o', out, path.join(ROOT, source)], {
        timeoutMs: 120_000,
      });
      return out;
    },
    help: async (d) =>
      (
        await runner.run([node, path.join(ROOT, 'dist', d, 'main.mjs'), '--help'], {
          timeoutMs: 60_000,
          env: { HOME: '/nonexistent' },
        })
      ).stdout,
  };
  const built = await Promise.all(
    ready.map(async (s) => {
      const plan = await planPackage(s, ctx);
      const deb = await buildDeb(
        s,
        plan,
        version,
        path.join(outDir, 'stage', s.package),
        outDir,
        tools,
      );
      return { spec: s, deb, bytes: (await stat(deb)).size, files: plan.files.length };
    }),
  );
  let lintErrors = 0;
  for (const b of built) {
    console.log(
      `${path.relative(ROOT, b.deb)}  ${(b.bytes / 1024).toFixed(0)} KiB  ${b.files} files`,
    );
    if (lintian !== undefined) {
      const r = await runner.run([lintian, '--no-tag-display-limit', b.deb], {
        timeoutMs: 300_000,
        okCodes: [0, 1, 2],
      });
      const tags = r.stdout.trim();
      if (tags !== '') console.log(tags.replace(/^/gm, '  '));
      lintErrors += tags.split('\n').filter((l) => l.startsWith('E: ')).length;
    }
  }
  if (lintErrors > 0) {
    process.stderr.write(`package: lintian reported ${lintErrors} error(s)\n`);
    return 1;
  }
  return 0;
}

if (
  process.argv[1] !== undefined &&
  path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)
) {
  process.exitCode = await main().catch((err: unknown) => {
    process.stderr.write(`package: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  });
}
