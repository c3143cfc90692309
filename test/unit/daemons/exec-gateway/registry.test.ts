import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../../shared/config/index.ts';
import { configSchema } from '../../../../daemons/exec-gateway/config.ts';
import {
  pickAddress,
  tomlRegistry,
  type PoolRecord,
} from '../../../../daemons/exec-gateway/registry.ts';

const pool: PoolRecord = {
  name: 'p',
  port: 20250,
  addresses: [
    { type: 'ExternalIP', address: '203.0.113.7' },
    { type: 'InternalIP', address: '10.0.0.7' },
    { type: 'InternalDNS', address: ' ' },
  ],
};

describe('pool address selection', () => {
  const cases = [
    {
      pref: ['Hostname', 'InternalDNS', 'InternalIP', 'ExternalDNS', 'ExternalIP'],
      want: '10.0.0.7',
    },
    { pref: ['ExternalIP', 'InternalIP'], want: '203.0.113.7' },
    { pref: ['InternalDNS'], want: undefined },
    { pref: ['Hostname', 'ExternalDNS'], want: undefined },
  ] as const;
  for (const c of cases) {
    it(`picks ${c.want ?? 'nothing'} for ${c.pref.join(',')} (blank addresses never count)`, () => {
      assert.equal(pickAddress(pool, c.pref), c.want);
    });
  }
});

const TLS = `ca_file = "/c"\ncert_file = "/a"\nkey_file = "/b"\n`;

describe('exec-gateway config', () => {
  it('defaults the address preference to Hostname, InternalDNS, InternalIP, ExternalDNS, ExternalIP', () => {
    const c = parseConfig(`[tls]\n${TLS}[upstream_tls]\n${TLS}`, 'g.toml', configSchema);
    assert.deepEqual(c.preferred_address_types, [
      'Hostname',
      'InternalDNS',
      'InternalIP',
      'ExternalDNS',
      'ExternalIP',
    ]);
    assert.deepEqual(c.listen, { host: '0.0.0.0', port: 8443 });
  });

  it('rejects an unknown address type and duplicate machines, naming the key', () => {
    assert.throws(
      () =>
        parseConfig(
          `[tls]\n${TLS}[upstream_tls]\n${TLS}[[pools]]\nname = "p"\nport = 1\naddresses = [{ type = "Wifi", address = "x" }]\n`,
          'g.toml',
          configSchema,
        ),
      /g\.toml: \[pools\[0\]\.addresses\[0\]\]\.type|pools.*type/,
    );
    assert.throws(
      () =>
        parseConfig(
          `[tls]\n${TLS}[upstream_tls]\n${TLS}[[machines]]\nnamespace = "a"\nname = "b"\n[[machines]]\nnamespace = "a"\nname = "b"\n`,
          'g.toml',
          configSchema,
        ),
      /duplicate machine a\/b/,
    );
  });

  it('finds machines and pools from the TOML registry', async () => {
    const c = parseConfig(
      `[tls]\n${TLS}[upstream_tls]\n${TLS}[[pools]]\nname = "p"\nport = 7\n[[machines]]\nnamespace = "a"\nname = "b"\npool = "p"\n`,
      'g.toml',
      configSchema,
    );
    const r = tomlRegistry(c);
    assert.equal((await r.getMachine('a', 'b'))?.pool, 'p');
    assert.equal(await r.getMachine('a', 'c'), undefined);
    assert.equal((await r.getPool('p'))?.port, 7);
  });
});
