// Bundles the browser UI: app.ts with xterm.js into one local app.js (no CDN), next to
// index.html, app.css and xterm's stylesheet. Used by the build, the .deb and the tests.
//   npx tsx daemons/webterminal/ui/build.ts OUT_DIR
import { copyFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Writes index.html, app.js, app.css and xterm.css into `outDir`. */
export async function buildUi(outDir: string): Promise<void> {
  await mkdir(outDir, { recursive: true });
  await esbuild.build({
    entryPoints: [path.join(here, 'app.ts')],
    outfile: path.join(outDir, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'eof',
    logLevel: 'silent',
  });
  const require = createRequire(import.meta.url);
  const xtermCss = path.join(
    path.dirname(require.resolve('@xterm/xterm/package.json')),
    'css',
    'xterm.css',
  );
  await Promise.all([
    copyFile(path.join(here, 'index.html'), path.join(outDir, 'index.html')),
    copyFile(path.join(here, 'app.css'), path.join(outDir, 'app.css')),
    copyFile(xtermCss, path.join(outDir, 'xterm.css')),
  ]);
}

if (
  process.argv[1] !== undefined &&
  path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)
) {
  const out = process.argv[2];
  if (out === undefined) {
    process.stderr.write('usage: build.ts OUT_DIR\n');
    process.exit(64);
  }
  await buildUi(path.resolve(out));
}
