import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, parseConfig } from '../../../../shared/config/index.ts';
import {
  configSchema,
  drainTimeoutMs,
  listenAddress,
  toJobLimits,
} from '../../../../daemons/cu-thor-server/config.ts';

const SHIPPED = path.resolve(import.meta.dirname, '../../../../etc/hostplane/cu-thor-server.toml');
const parse = (text: string) => parseConfig(text, 'test.toml', configSchema);

function problems(text: string): string[] {
  try {
    parse(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n');
  }
  assert.fail('expected the config to be refused');
}

describe('cu-thor-server config', () => {
  it('the shutdown wait grows with stop_grace, and the shipped unit waits longer than the default', async () => {
    // a fixed 25 s wait gave up on jobs that ignore SIGTERM before stop_grace = 40s killed them
    assert.ok(drainTimeoutMs(parse('stop_grace = "40s"')) >= 45_000);
    assert.ok(drainTimeoutMs(parse('stop_grace = "0s"')) >= 5_000);
    const unit = await readFile(
      path.resolve(import.meta.dirname, '../../../../systemd/cu-thor-server.service'),
      'utf8',
    );
    const m = /^TimeoutStopSec=(\d+)s$/m.exec(unit);
    assert.ok(m, 'TimeoutStopSec in seconds');
    assert.ok(Number(m[1]) * 1000 >= drainTimeoutMs(parse('')) + 5_000);
  });

  it('an empty file gives the documented defaults', () => {
    const c = parse('');
    assert.deepEqual(c.listen, { host: '0.0.0.0', port: 50051 });
    assert.equal(c.state_dir, '/var/lib/hostplane/cu-thor-server');
    assert.equal(c.stop_grace, 10_000);
    assert.equal(c.cgroup.require, true);
    assert.equal(c.tls.ca_file, '/etc/hostplane/cu-thor-server/ca.crt');
    assert.deepEqual(toJobLimits(c.limits.default), {
      cpuPercent: 100,
      memoryMaxBytes: 512 * 1024 ** 2,
      pidsMax: 1024,
    });
    assert.deepEqual(toJobLimits(c.limits.total), {});
  });

  it('the shipped file with every key uncommented means exactly the defaults', async () => {
    const shipped = await readFile(SHIPPED, 'utf8');
    const uncommented = shipped.replace(/^#(\w+ = .*)$/gm, '$1');
    assert.notEqual(uncommented, shipped);
    // "max" reads as an absent limit: compare as JSON, where both are absent
    const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v));
    assert.deepEqual(json(parse(uncommented)), json(parse('')));
  });

  it('setting one limit keeps the defaults of the others; "max" removes a limit', () => {
    const c = parse('[limits.default]\nmemory_max = "1G"\ncpu_percent = "max"\n');
    assert.deepEqual(toJobLimits(c.limits.default), { memoryMaxBytes: 1024 ** 3, pidsMax: 1024 });
  });

  it('io limits per device take sizes', () => {
    const c = parse('[[limits.max.io]]\ndevice = "/dev/vda"\nrbps = "50MiB"\n');
    assert.deepEqual(toJobLimits(c.limits.max).io, [{ device: '/dev/vda', rbps: 50 * 1024 ** 2 }]);
  });

  for (const { name, text, want } of [
    { name: 'an unknown key', text: 'listn = "x:1"', want: /unknown key "listn"/ },
    { name: 'a malformed listen', text: 'listen = "50051"', want: /listen: expected host:port/ },
    {
      name: 'a relative state_dir',
      text: 'state_dir = "state"',
      want: /state_dir: expected an absolute path/,
    },
    {
      name: 'a bad duration',
      text: 'stop_grace = "soon"',
      want: /stop_grace: expected a duration/,
    },
    { name: 'a negative cpu limit', text: '[limits.max]\ncpu_percent = -5', want: /cpu_percent/ },
    {
      name: 'a zero output cap',
      text: 'max_output_bytes = 0',
      want: /max_output_bytes: must be more than 0/,
    },
    {
      name: 'an io limit with no rate',
      text: '[[limits.max.io]]\ndevice = "/dev/vda"',
      want: /set rbps, wbps or both/,
    },
    { name: 'zero max_concurrent', text: 'max_concurrent = 0', want: /max_concurrent/ },
  ]) {
    it(`refuses ${name}, naming the key`, () => {
      const lines = problems(text);
      assert.ok(
        lines.some((l) => want.test(l)),
        lines.join('\n'),
      );
    });
  }

  it('listenAddress brackets IPv6 hosts for grpc-js', () => {
    assert.equal(listenAddress({ host: '::1', port: 5 }), '[::1]:5');
    assert.equal(listenAddress({ host: '127.0.0.1', port: 0 }), '127.0.0.1:0');
  });
});
