// Builds the native helpers into dist/native/ (today: hostplane-nsinit), skipping what is up to
// date. Usage: tsx scripts/build-native.ts [--force] [--out PATH]
import { parseArgs } from 'node:util';
import { createLogger } from '../shared/log/index.ts';
import { createRunner, findBinary } from '../shared/exec/index.ts';
import { buildNsInit, DEV_NSINIT } from '../shared/ns/build.ts';

const { values } = parseArgs({
  options: { force: { type: 'boolean', default: false }, out: { type: 'string' } },
});
const out = values.out ?? DEV_NSINIT;
const gcc = await findBinary('gcc');
const runner = createRunner({
  log: createLogger({ name: 'build-native', level: 'warn' }),
  allow: [gcc],
});
const t0 = performance.now();
const built = await buildNsInit(runner, { out, gcc, force: values.force });
console.log(
  `${out}  ${built ? `built in ${Math.round(performance.now() - t0)} ms` : 'up to date'}`,
);
