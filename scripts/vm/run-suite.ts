// `npm run test:vm`: runs node:test files inside the test VM (one boot for all of them) and exits
// with their status. Usage: tsx scripts/vm/run-suite.ts [DIR|FILE...]   (default test/vm)
// HOSTPLANE_VM_TEST_FILES="a.test.ts b.test.ts" chooses files instead of the arguments;
// HOSTPLANE_VM_TIMEOUT_MS bounds the whole run (default 30 min); HOSTPLANE_VM_KEEP=1 keeps the
// run directory (overlay, serial console log).
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createLogger } from '../../shared/log/index.ts';
import { createRunner } from '../../shared/exec/index.ts';
import { ensureImage, runInVm, VM_BINARIES } from './run.ts';

const checkout = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

async function testFiles(args: string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: string): Promise<void> => {
    const st = await stat(p);
    if (st.isDirectory()) {
      for (const e of (await readdir(p)).sort()) {
        if (e !== 'node_modules') await walk(join(p, e));
      }
    } else if (p.endsWith('.test.ts') || args.includes(relative(checkout, p))) {
      out.push(relative(checkout, p));
    }
  };
  for (const a of args) {
    const p = resolve(checkout, a);
    if (!p.startsWith(checkout + '/')) throw new Error(`test path ${a} is outside the checkout`);
    await walk(p);
  }
  return [...new Set(out)];
}

async function main(): Promise<number> {
  const envFiles = process.env['HOSTPLANE_VM_TEST_FILES']?.split(/\s+/).filter((s) => s !== '');
  const args = process.argv.slice(2);
  const files = await testFiles(
    envFiles !== undefined && envFiles.length > 0 ? envFiles : args.length > 0 ? args : ['test/vm'],
  );
  if (files.length === 0) {
    process.stderr.write('run-suite: no *.test.ts files to run\n');
    return 2;
  }
  // Audit records go to stderr so that stdout carries only the test output.
  const log = createLogger({
    name: 'vm',
    level: 'warn',
    destination: pino.destination({ fd: 2, sync: true }),
  });
  const runner = createRunner({ log, allow: [...VM_BINARIES] });
  // Ctrl-C or a CI cancel stops qemu instead of leaving it running.
  const stop = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      stop.abort();
    });
  const t0 = Date.now();
  const image = await ensureImage({ runner, log });
  const buildMs = Date.now() - t0;
  process.stderr.write(`run-suite: image ${image.dir} ready in ${(buildMs / 1000).toFixed(1)} s\n`);
  process.stderr.write(`run-suite: ${files.length} file(s) in the VM: ${files.join(' ')}\n`);

  const script = [
    'set -e',
    'cd /mnt/host',
    'echo "[vm] node $(node -v), kernel $(uname -r), $(nproc) cpus, up $(cut -d" " -f1 /proc/uptime) s"',
    // one file at a time: the VM tests share the machine's cgroups, block device and systemd
    `exec node --import tsx --test --test-reporter=spec --test-concurrency=1 ${files.map((f) => `'${f}'`).join(' ')}`,
  ].join('\n');
  const result = await runInVm(
    { runner, log },
    {
      share: checkout,
      command: script,
      env: { HOSTPLANE_IN_VM: '1', HOME: '/root' },
      image,
      timeoutMs: Number(process.env['HOSTPLANE_VM_TIMEOUT_MS'] ?? 30 * 60_000),
      onOutput: (s) => process.stdout.write(s),
      keep: process.env['HOSTPLANE_VM_KEEP'] === '1',
      signal: stop.signal,
    },
  );
  const wall = (result.wallMs / 1000).toFixed(1);
  process.stderr.write(
    `run-suite: exit ${result.code ?? 'none'}, command started at guest uptime ${result.bootSeconds ?? '?'} s, boot+suite ${wall} s wall\n`,
  );
  if (result.code === null) {
    const tail = result.consoleLog.split('\n').slice(-60).join('\n');
    process.stderr.write(`run-suite: the VM gave no exit status; serial console tail:\n${tail}\n`);
  }
  if (result.runDir !== null)
    process.stderr.write(`run-suite: run directory kept: ${result.runDir}\n`);
  return result.code ?? 1;
}

process.exitCode = await main().catch((err: unknown) => {
  process.stderr.write(`run-suite: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
});
