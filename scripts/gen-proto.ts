// Regenerates the TypeScript types of proto/**.proto into shared/proto/generated/ with
// proto-loader-gen-types, using the loader options of shared/proto (LOAD_OPTIONS). Each .proto's
// root type file (ProtoGrpcType) is named after its path, not only its basename (rootFileName),
// so that two protos with the same basename cannot collide.
//   npx tsx scripts/gen-proto.ts          rewrite shared/proto/generated/
//   npx tsx scripts/gen-proto.ts --check  exit 1 when the committed types differ (CI)
import { cp, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { createRunner, type Runner } from '../shared/exec/index.ts';
import { createLogger } from '../shared/log/index.ts';

const root = path.resolve(import.meta.dirname, '..');
const protoDir = path.join(root, 'proto');
export const GENERATED_DIR = path.join(root, 'shared', 'proto', 'generated');

/** The generator's flags; they mirror shared/proto's LOAD_OPTIONS. */
export const GEN_FLAGS = [
  '--longs=String',
  '--enums=String',
  '--defaults',
  '--oneofs',
  '--includeComments',
  '--grpcLib=@grpc/grpc-js',
  '--importFileExtension=.ts',
] as const;

async function filesUnder(dir: string, suffix = ''): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(
    (err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    },
  );
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(suffix))
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

/**
 * The root type file of `proto` (relative to proto/): its path with the directories joined by
 * dots, e.g. iri/machine/v1alpha1/api.proto → iri.machine.v1alpha1.api.ts.
 */
export function rootFileName(proto: string): string {
  return (
    proto
      .replace(/\.proto$/, '')
      .split(/[\\/]/)
      .join('.') + '.ts'
  );
}

/** Generates the types of every .proto under `dir` (default the checkout's proto/) into `outDir`. */
export async function generate(runner: Runner, outDir: string, dir = protoDir): Promise<void> {
  const protos = await filesUnder(dir, '.proto');
  if (protos.length === 0) throw new Error(`generating proto types: no .proto files under ${dir}`);
  const names = new Map<string, string>();
  for (const p of protos) {
    const other = names.get(rootFileName(p));
    if (other !== undefined) {
      throw new Error(
        `generating proto types: ${other} and ${p} would share the root file ${rootFileName(p)}`,
      );
    }
    names.set(rootFileName(p), p);
  }
  const bin = createRequire(import.meta.url).resolve(
    '@grpc/proto-loader/build/bin/proto-loader-gen-types.js',
  );
  // one run per file: the generator names a root file after the basename alone (and merges
  // protos that share one), so each is renamed before the next run could overwrite it
  for (const p of protos) {
    // relative paths keep the "Original file:" comments free of the checkout's location.
    const include = path.basename(dir);
    await runner.run(
      [process.execPath, bin, ...GEN_FLAGS, '-I', include, '-O', outDir, path.join(include, p)],
      {
        cwd: path.dirname(dir),
        timeoutMs: 120_000,
      },
    );
    await rename(
      path.join(outDir, path.basename(p).replace(/\.proto$/, '.ts')),
      path.join(outDir, rootFileName(p)),
    );
  }
}

/** Files that differ between two trees (missing on either side, or other content). */
export async function diffTrees(want: string, have: string): Promise<string[]> {
  const [a, b] = await Promise.all([filesUnder(want), filesUnder(have)]);
  const all = [...new Set([...a, ...b])].sort();
  const differ: string[] = [];
  for (const f of all) {
    const [x, y] = await Promise.all(
      [want, have].map((d) => readFile(path.join(d, f)).catch(() => null)),
    );
    if (x === null || y === null || x === undefined || y === undefined || !x.equals(y)) {
      differ.push(f);
    }
  }
  return differ;
}

/** Regenerates (or with `check`, compares); returns the process exit code. */
export async function genProto(runner: Runner, check: boolean): Promise<number> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'hostplane-gen-proto-'));
  try {
    await generate(runner, tmp);
    const differ = await diffTrees(tmp, GENERATED_DIR);
    if (check) {
      if (differ.length === 0) {
        console.log('proto types are up to date');
        return 0;
      }
      console.error(
        `shared/proto/generated is out of date (${differ.join(', ')}): ` +
          'run npx tsx scripts/gen-proto.ts and commit the result',
      );
      return 1;
    }
    await rm(GENERATED_DIR, { recursive: true, force: true });
    await cp(tmp, GENERATED_DIR, { recursive: true });
    console.log(
      differ.length === 0
        ? 'proto types unchanged'
        : `proto types regenerated: ${differ.join(', ')}`,
    );
    return 0;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const check = process.argv.includes('--check');
  const log = createLogger({ name: 'gen-proto', level: 'warn' });
  const runner = createRunner({ log, allow: [process.execPath] });
  process.exitCode = await genProto(runner, check);
}
