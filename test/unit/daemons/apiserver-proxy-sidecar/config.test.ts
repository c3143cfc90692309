import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { ConfigError, parseConfig } from '../../../../shared/config/index.ts';
import { sidecarSchema } from '../../../../daemons/apiserver-proxy-sidecar/config.ts';
import { webhookSchema } from '../../../../daemons/apiserver-proxy-pod-webhook/config.ts';

/** The shipped file with every `#key = value` line uncommented (unset ones stay comments). */
async function uncommented(file: string): Promise<string> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .map((l) => (/^#[a-z_]+ = /.test(l) && !l.includes('(unset)') ? l.slice(1) : l))
    .join('\n');
}

describe('apiserver-proxy config files', () => {
  it('the shipped sidecar file lists every key at its default', async () => {
    const file = 'etc/hostplane/apiserver-proxy-sidecar.toml';
    const shipped = parseConfig(await uncommented(file), file, sidecarSchema);
    const minimal = parseConfig('ip_address = "10.96.0.2"\n', 'min.toml', sidecarSchema);
    // the example metrics listener is the one key without a default
    const { metrics_listen, ...rest } = shipped;
    assert.deepEqual(metrics_listen, { host: '127.0.0.1', port: 9442 });
    assert.deepEqual(rest, minimal);
    assert.deepEqual(Object.keys(shipped).sort(), Object.keys(sidecarSchema.shape).sort());
  });

  it('the shipped webhook file lists every key at its default', async () => {
    const file = 'etc/hostplane/apiserver-proxy-pod-webhook.toml';
    const shipped = parseConfig(await uncommented(file), file, webhookSchema);
    const minimal = parseConfig('apiserver_fqdn = "api.example.com."\n', 'min.toml', webhookSchema);
    assert.deepEqual(shipped, minimal);
    const keys = Object.keys(webhookSchema.shape).filter((k) => k !== 'client_ca_name');
    assert.deepEqual(Object.keys(shipped).sort(), keys.sort());
  });

  it('accepts one address or a list, IPv4 and IPv6, and durations', () => {
    const c = parseConfig(
      'ip_address = ["10.96.0.2", "fd00::2"]\nkubernetes_service_ip_address = "10.96.0.1"\nsync_interval = "30s"\n',
      'x.toml',
      sidecarSchema,
    );
    assert.deepEqual(c.ip_address, ['10.96.0.2', 'fd00::2']);
    assert.deepEqual(c.kubernetes_service_ip_address, ['10.96.0.1']);
    assert.equal(c.sync_interval, 30_000);
    assert.equal(c.interface, 'lo');
    assert.equal(c.port, 443);
  });

  const invalid: { name: string; text: string; re: RegExp; schema: 'sidecar' | 'webhook' }[] = [
    {
      name: 'a missing ip_address',
      text: '',
      re: /ip_address: required key is missing/,
      schema: 'sidecar',
    },
    {
      name: 'a bad address',
      text: 'ip_address = "10.96.0.300"',
      re: /ip_address\[0\]: expected an IP address/,
      schema: 'sidecar',
    },
    {
      name: 'an unknown key',
      text: 'ip_address = "10.0.0.1"\nsetup-iptables = true',
      re: /unknown key "setup-iptables"/,
      schema: 'sidecar',
    },
    {
      name: 'a non-loopback metrics listener',
      text: 'ip_address = "10.0.0.1"\nmetrics_listen = "0.0.0.0:9442"',
      re: /loopback/,
      schema: 'sidecar',
    },
    {
      name: 'a too long interface name',
      text: 'ip_address = "10.0.0.1"\ninterface = "a-very-long-name0"',
      re: /interface name/,
      schema: 'sidecar',
    },
    {
      name: 'an address with a zone id',
      text: 'ip_address = "fe80::1%lo"',
      re: /ip_address\[0\]: "fe80::1%lo": zone ids/,
      schema: 'sidecar',
    },
    {
      name: 'the unspecified IPv4 address',
      text: 'ip_address = "0.0.0.0"',
      re: /ip_address\[0\]: "0\.0\.0\.0": the unspecified address/,
      schema: 'sidecar',
    },
    {
      name: 'the unspecified IPv6 address',
      text: 'ip_address = ["10.0.0.1", "::"]',
      re: /ip_address\[1\]: "::": the unspecified address/,
      schema: 'sidecar',
    },
    {
      name: 'the limited broadcast address',
      text: 'ip_address = "255.255.255.255"',
      re: /ip_address\[0\]: .*broadcast/,
      schema: 'sidecar',
    },
    {
      name: 'an IPv4 multicast address',
      text: 'ip_address = "10.0.0.1"\nkubernetes_service_ip_address = "224.0.0.1"',
      re: /kubernetes_service_ip_address\[0\]: .*multicast addresses \(224\.0\.0\.0\/4\)/,
      schema: 'sidecar',
    },
    {
      name: 'an IPv6 multicast address',
      text: 'ip_address = "ff02::1"',
      re: /ip_address\[0\]: .*multicast addresses \(ff00::\/8\)/,
      schema: 'sidecar',
    },
    {
      name: 'the interface name "."',
      text: 'ip_address = "10.0.0.1"\ninterface = "."',
      re: /interface: expected an interface name the kernel accepts: "." is "." or ".."/,
      schema: 'sidecar',
    },
    {
      name: 'the interface name ".."',
      text: 'ip_address = "10.0.0.1"\ninterface = ".."',
      re: /interface: .*"\.\." is "." or ".."/,
      schema: 'sidecar',
    },
    {
      name: 'an interface name with a slash',
      text: 'ip_address = "10.0.0.1"\ninterface = "a/b"',
      re: /interface: .*contains "\/" or whitespace/,
      schema: 'sidecar',
    },
    {
      name: 'an interface name with a space',
      text: 'ip_address = "10.0.0.1"\ninterface = "a b"',
      re: /interface: .*contains "\/" or whitespace/,
      schema: 'sidecar',
    },
    {
      name: 'an interface name over 15 bytes',
      text: 'ip_address = "10.0.0.1"\ninterface = "a-very-long-name0"',
      re: /interface: .*is longer than 15 bytes/,
      schema: 'sidecar',
    },
    {
      name: 'a port out of range',
      text: 'ip_address = "10.0.0.1"\nport = 70000',
      re: /port/,
      schema: 'sidecar',
    },
    {
      name: 'an sync_interval under a second',
      text: 'ip_address = "10.0.0.1"\nsync_interval = "10ms"',
      re: /at least 1s/,
      schema: 'sidecar',
    },
    {
      name: 'a name that is not an FQDN',
      text: 'apiserver_fqdn = "localhost"',
      re: /apiserver_fqdn: expected a fully qualified domain name/,
      schema: 'webhook',
    },
    {
      name: 'a missing apiserver_fqdn',
      text: '',
      re: /apiserver_fqdn: required key is missing/,
      schema: 'webhook',
    },
    {
      name: 'a cert name with a slash',
      text: 'apiserver_fqdn = "a.b"\ncert_name = "../x"',
      re: /cert_name: expected a file name/,
      schema: 'webhook',
    },
    {
      name: 'a host that is no address',
      text: 'apiserver_fqdn = "a.b"\nhost = "example"',
      re: /host: expected/,
      schema: 'webhook',
    },
  ];
  for (const c of invalid) {
    it(`rejects ${c.name}, naming the file and key`, () => {
      assert.throws(
        () => parseConfig(c.text, 'f.toml', c.schema === 'sidecar' ? sidecarSchema : webhookSchema),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.match(err.message, /^f\.toml: /);
          assert.match(err.message, c.re);
          return true;
        },
      );
    });
  }

  it('keeps the FQDN as written (trailing dot and all)', () => {
    const c = parseConfig('apiserver_fqdn = "API.example.com."', 'f.toml', webhookSchema);
    assert.equal(c.apiserver_fqdn, 'API.example.com.');
  });
});
