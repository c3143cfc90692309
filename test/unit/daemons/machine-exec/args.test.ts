import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execUrl, parseCli } from '../../../../daemons/machine-exec/args.ts';

describe('machine-exec arguments', () => {
  it('takes the gateway and credentials from flags before the environment before defaults', () => {
    const env = { MACHINE_EXEC_GATEWAY: 'https://env:1', MACHINE_EXEC_CREDS: '/env/creds' };
    const a = parseCli(['--gateway', 'https://flag:2', '--creds', '/flag', 'ns/m'], env, '/home/u');
    assert.ok(a.kind === 'exec');
    assert.equal(a.gateway.href, 'https://flag:2/');
    assert.equal(a.creds, '/flag');
    const b = parseCli(['ns/m'], env, '/home/u');
    assert.ok(b.kind === 'exec');
    assert.equal(b.gateway.href, 'https://env:1/');
    assert.equal(b.creds, '/env/creds');
    const c = parseCli(['ns/m'], {}, '/home/u');
    assert.ok(c.kind === 'exec');
    assert.equal(c.gateway.href, 'https://localhost:8443/');
    assert.equal(c.creds, '/home/u/.machine-exec/creds');
    assert.deepEqual([c.namespace, c.name, c.tty], ['ns', 'm', undefined]);
  });

  it('forces the terminal mode either way', () => {
    const t = parseCli(['--tty', 'a/b'], {});
    const n = parseCli(['-T', 'a/b'], {});
    assert.ok(t.kind === 'exec' && n.kind === 'exec');
    assert.equal(t.tty, true);
    assert.equal(n.tty, false);
    assert.equal(parseCli(['--tty', '--no-tty', 'a/b'], {}).kind, 'usage-error');
  });

  it('rejects malformed machine names', () => {
    for (const arg of ['a', 'a/b/c', 'A/b', '/b', 'a/']) {
      assert.equal(parseCli([arg], {}).kind, 'usage-error', arg);
    }
  });

  it("puts the exec path after the gateway URL's path, with or without a trailing slash", () => {
    const tail = 'apis/compute.ironcore.dev/namespaces/ns/machines/m/exec?tty=true';
    for (const [gateway, want] of [
      ['https://gw:8443', `https://gw:8443/${tail}`],
      ['https://gw:8443/', `https://gw:8443/${tail}`],
      ['https://gw/exec/prefix', `https://gw/exec/prefix/${tail}`],
      ['https://gw/exec/prefix/', `https://gw/exec/prefix/${tail}`],
    ] as const) {
      const a = parseCli(['--gateway', gateway, 'ns/m'], {});
      assert.ok(a.kind === 'exec', gateway);
      assert.equal(execUrl(a.gateway, a.namespace, a.name, true).href, want, gateway);
    }
  });

  it('refuses a gateway URL with a query, a fragment or a user name', () => {
    for (const gateway of [
      'https://gw/?x=1',
      'https://gw/#f',
      'https://u@gw/',
      'https://u:p@gw/',
    ]) {
      const a = parseCli(['--gateway', gateway, 'ns/m'], {});
      assert.equal(a.kind, 'usage-error', gateway);
    }
  });
});
