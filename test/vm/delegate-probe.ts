// Run by delegation.test.ts as a systemd unit with Delegate=yes: sets up the delegated subtree
// the way a daemon does, creates a limited child, and prints what it found as one JSON line.
import { readFile } from 'node:fs/promises';
import { setupDelegation } from '../../shared/cgroup/index.ts';

const { base, leaf, missing } = await setupDelegation({
  controllers: ['cpu', 'memory', 'io', 'pids'],
  leafName: 'supervisor',
});
const job = base.child('job-1');
await job.create();
await job.setMemoryMax(32 * 1024 * 1024);
await job.setCpuMax(50_000);
await job.setPidsMax(16);
const result = {
  base: base.rel,
  leaf: leaf.rel,
  missing,
  self: (await readFile('/proc/self/cgroup', 'utf8')).trim(),
  baseProcs: await base.procs(),
  leafProcs: await leaf.procs(),
  subtree: await base.subtreeControllers(),
  jobControllers: await job.controllers(),
  jobMemoryMax: (await readFile(`${job.path}/memory.max`, 'utf8')).trim(),
  jobCpuMax: (await readFile(`${job.path}/cpu.max`, 'utf8')).trim(),
  pid: process.pid,
};
await job.remove();
process.stdout.write(JSON.stringify(result) + '\n');
