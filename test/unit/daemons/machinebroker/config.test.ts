import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../../shared/config/index.ts';
import { configSchema } from '../../../../daemons/machinebroker/config.ts';

const parse = (text: string) => parseConfig(text, 'b.toml', configSchema);

describe('machinebroker config', () => {
  it('defaults to a 1m token ttl, 1,000 tokens in flight and a loopback streaming server', () => {
    const c = parse('');
    assert.equal(c.streaming.token_ttl, 60_000);
    assert.equal(c.streaming.max_in_flight, 1000);
    assert.deepEqual(c.streaming.listen, { host: '127.0.0.1', port: 0 });
    assert.equal(c.runtime.socket, '/run/hostplane/machinebroker.sock');
  });

  it('refuses a streaming server off loopback', () => {
    assert.throws(() => parse('[streaming]\nlisten = "0.0.0.0:9000"\n'), /loopback only/);
    assert.doesNotThrow(() => parse('[streaming]\nlisten = "[::1]:9000"\n'));
  });

  it('reads each target type and defaults the sandbox command to /bin/sh', () => {
    const c = parse(
      `[[machines]]\nid = "a"\nnamespace = "n"\nname = "a"\ntarget = { type = "sandbox" }\n` +
        `[[machines]]\nid = "b"\nnamespace = "n"\nname = "b"\ntarget = { type = "serial", socket = "/run/vm/b.sock" }\n` +
        `[[machines]]\nid = "c"\nnamespace = "n"\nname = "c"\n[machines.target]\ntype = "upstream"\nurl = "https://gw:8443"\n` +
        `ca_file = "/x"\ncert_file = "/y"\nkey_file = "/z"\n`,
    );
    assert.deepEqual(c.machines[0]?.target, { type: 'sandbox', command: ['/bin/sh'] });
    assert.equal(c.machines[1]?.target.type, 'serial');
    assert.equal(c.machines[2]?.target.type === 'upstream' && c.machines[2].target.timeout, 10_000);
  });

  it('rejects an unknown target type, a plain-http upstream and duplicate ids', () => {
    assert.throws(() =>
      parse(`[[machines]]\nid = "a"\nnamespace = "n"\nname = "a"\ntarget = { type = "vnc" }\n`),
    );
    assert.throws(() =>
      parse(
        `[[machines]]\nid = "a"\nnamespace = "n"\nname = "a"\ntarget = { type = "upstream", url = "http://gw", ca_file = "/x", cert_file = "/y", key_file = "/z" }\n`,
      ),
    );
    assert.throws(
      () =>
        parse(
          `[[machines]]\nid = "a"\nnamespace = "n"\nname = "a"\ntarget = { type = "sandbox" }\n` +
            `[[machines]]\nid = "a"\nnamespace = "n"\nname = "b"\ntarget = { type = "sandbox" }\n`,
        ),
      /duplicate machine id a/,
    );
  });
});
