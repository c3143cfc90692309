// Builds the native helpers into dist/native/ (hostplane-nsinit and the page-cache addon),
// skipping what is up to date. Usage: tsx scripts/build-native.ts [--force]
import { parseArgs } from 'node:util';
import { createLogger } from '../shared/log/index.ts';
import { createRunner, findBinary } from '../shared/exec/index.ts';
import { buildNative } from '../shared/native/build.ts';
import { DEV_PAGECACHE, PAGECACHE } from '../shared/native/pagecache.ts';
import { DEV_NSINIT, NSINIT } from '../shared/ns/build.ts';

const { values } = parseArgs({ options: { force: { type: 'boolean', default: false } } });
const gcc = await findBinary('gcc');
const runner = createRunner({
  log: createLogger({ name: 'build-native', level: 'warn' }),
  allow: [gcc],
});
for (const [src, out] of [
  [NSINIT, DEV_NSINIT],
  [PAGECACHE, DEV_PAGECACHE],
] as const) {
  const t0 = performance.now();
  const built = await buildNative(runner, src, { out, gcc, force: values.force });
  console.log(
    `${out}  ${built ? `built in ${Math.round(performance.now() - t0)} ms` : 'up to date'}`,
  );
}
