// setupDelegation inside a real Delegate=yes unit started by systemd.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BIN, vmRunner, vmSkipReason } from './helpers.ts';

const skip = await vmSkipReason();

describe('cgroup delegation under systemd', { skip, timeout: 600_000 }, () => {
  it('a Delegate=yes service moves itself to a leaf and can limit child cgroups', async () => {
    const runner = vmRunner();
    const unit = 'hp-delegate-probe';
    const r = await runner.run(
      [
        BIN.systemdRun,
        `--unit=${unit}`,
        '--quiet',
        '--wait',
        '--collect',
        '--pipe',
        '-p',
        'Delegate=yes',
        '-p',
        `WorkingDirectory=${process.cwd()}`,
        BIN.node,
        '--import',
        'tsx',
        'test/vm/delegate-probe.ts',
      ],
      { timeoutMs: 330_000 },
    );
    const found = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
    assert.equal(found['base'], `/system.slice/${unit}.service`);
    assert.equal(found['leaf'], `/system.slice/${unit}.service/supervisor`);
    assert.equal(found['self'], `0::/system.slice/${unit}.service/supervisor`);
    assert.deepEqual(found['missing'], []);
    assert.deepEqual(found['baseProcs'], []);
    assert.ok((found['leafProcs'] as number[]).includes(found['pid'] as number));
    assert.deepEqual([...(found['subtree'] as string[])].sort(), ['cpu', 'io', 'memory', 'pids']);
    assert.equal(found['jobMemoryMax'], String(32 * 1024 * 1024));
    assert.equal(found['jobCpuMax'], '50000 100000');
  });
});
