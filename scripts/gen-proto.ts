// Regenerates the TypeScript types of proto/**.proto into shared/proto/generated/ with
// proto-loader-gen-types, using the loader options of shared/proto (LOAD_OPTIONS).
//   npx tsx scripts/gen-proto.ts          rewrite shared/proto/generated/
//   npx tsx scripts/gen-proto.ts --check  exit 1 when the committed types differ (CI)
import { mkdtemp, readdir, readFile, rm, cp } from 'node:fs/promises';
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

/** Generates the types of every .proto into `outDir`. */
export async function generate(runner: Runner, outDir: string): Promise<void> {
  const protos = await filesUnder(protoDir, '.proto');
  if (protos.length === 0)
    throw new Error(`generating proto types: no .proto files under ${protoDir}`);
  const bin = createRequire(import.meta.url).resolve(
    '@grpc/proto-loader/build/bin/proto-loader-gen-types.js',
  );
  // relative paths keep the "Original file:" comments free of the checkout's location.
  await runner.run([process.execPath, bin, ...GEN_FLAGS, '-I', 'proto', '-O', outDir, ...protos], {
    cwd: root,
    timeoutMs: 120_000,
  });
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
