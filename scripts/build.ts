// Bundles each daemon and CLI (daemons/<name>/main.ts) into dist/<name>/main.mjs with esbuild.
// Native addons stay external: packaging copies their built .node files beside the bundle.
import { build } from 'esbuild';
import { readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
/** Packages with native code or files read at run time: never inlined into a bundle. */
export const EXTERNAL = ['sd-notify', 'node-pty'];

async function daemonsWithMain(): Promise<string[]> {
  const names: string[] = [];
  for (const name of await readdir(path.join(root, 'daemons'))) {
    const main = path.join(root, 'daemons', name, 'main.ts');
    if (
      await stat(main).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      names.push(name);
  }
  return names.sort();
}

async function bundle(name: string): Promise<{ name: string; bytes: number; ms: number }> {
  const started = performance.now();
  const outfile = path.join(root, 'dist', name, 'main.mjs');
  const result = await build({
    entryPoints: [path.join(root, 'daemons', name, 'main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    legalComments: 'linked',
    external: EXTERNAL,
    metafile: true,
    logLevel: 'warning',
    // CommonJS dependencies (grpc-js, pino) call require() for node builtins.
    banner: {
      js: "import { createRequire as __hpCreateRequire } from 'node:module'; const require = __hpCreateRequire(import.meta.url);",
    },
  });
  await writeFile(
    path.join(root, 'dist', name, 'meta.json'),
    JSON.stringify(result.metafile, null, 1),
  );
  const bytes = (await stat(outfile)).size;
  return { name, bytes, ms: Math.round(performance.now() - started) };
}

const only = process.argv.slice(2);
const names = (await daemonsWithMain()).filter((n) => only.length === 0 || only.includes(n));
for (const r of await Promise.all(names.map(bundle))) {
  console.log(`dist/${r.name}/main.mjs  ${(r.bytes / 1024).toFixed(0)} KiB  ${r.ms} ms`);
}
