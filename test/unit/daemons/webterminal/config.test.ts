import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseConfig } from '../../../../shared/config/index.ts';
import { configSchema } from '../../../../daemons/webterminal/config.ts';
import { lookupUser, sandboxArgv } from '../../../../daemons/webterminal/sandbox.ts';
import { contentSecurityPolicy } from '../../../../daemons/webterminal/server.ts';

const parse = (toml: string) => parseConfig(toml, 'webterminal.toml', configSchema);

describe('webterminal config', () => {
  it('reads the shipped example, every key commented out, as the defaults once public_origins is set', () => {
    const shipped = readFileSync('etc/hostplane/webterminal.toml', 'utf8');
    assert.throws(() => parse(shipped), /public_origins: plain HTTP/);
    const c = parse(`public_origins = ["https://term.example.com"]\n${shipped}`);
    assert.equal(c.sessions.ttl, 300_000);
    assert.equal(c.sessions.ready_timeout, 10_000);
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 8443 });
  });

  it('refuses plain HTTP off loopback', () => {
    assert.throws(() => parse('listen = "0.0.0.0:80"\n'), /plain HTTP is allowed only on loopback/);
  });

  it('refuses plain HTTP without public_origins: behind the TLS proxy the Host says nothing of the browser origin', () => {
    assert.throws(
      () => parse('listen = "127.0.0.1:8080"\n'),
      /public_origins: plain HTTP .* needs/,
    );
    const c = parse('listen = "127.0.0.1:8080"\npublic_origins = ["https://term.example.com"]\n');
    assert.deepEqual(c.public_origins, ['https://term.example.com']);
    const tls = '[tls]\ncert_file = "/etc/t.crt"\nkey_file = "/etc/t.key"\n';
    assert.deepEqual(parse(tls).public_origins, [], 'with [tls] the Host header is the origin');
  });

  it('refuses duplicate target names and unknown keys', () => {
    const t = '[[targets]]\nname = "a"\ntype = "sandbox"\n';
    assert.throws(() => parse(t + t), /duplicate target a/);
    assert.throws(() => parse('[sessions]\nttl_x = "1s"\n'), /ttl_x/);
  });
});

describe('webterminal pure parts', () => {
  it('builds connect-src from self and wss/https of each allowed host', () => {
    assert.equal(
      contentSecurityPolicy(['*.seed.example.com'])
        .split('; ')
        .find((d) => d.startsWith('connect-src')),
      "connect-src 'self' wss://*.seed.example.com https://*.seed.example.com",
    );
    assert.match(contentSecurityPolicy([]), /frame-ancestors 'none'/);
  });

  it('drops to the user after setsid and inside the namespaces', () => {
    const argv = sandboxArgv(
      { unshare: '/u', nsinit: '/i', setsid: '/s', setpriv: '/p' },
      ['/bin/sh', '-i'],
      { uid: 65534, gid: 65534 },
    );
    const cmd = argv.slice(argv.lastIndexOf('--') + 1);
    assert.deepEqual(cmd.slice(0, 4), ['/s', '--ctty', '--wait', '/p']);
    assert.ok(cmd.includes('--reuid=65534') && cmd.includes('--no-new-privs'));
    assert.deepEqual(cmd.slice(-2), ['/bin/sh', '-i']);
    assert.ok(argv.includes('--pid') && argv.includes('--net') && argv.includes('--mount'));
  });

  it('finds users in passwd text', () => {
    const passwd =
      'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n';
    assert.deepEqual(lookupUser(passwd, 'nobody'), {
      uid: 65534,
      gid: 65534,
      home: '/nonexistent',
    });
    assert.equal(lookupUser(passwd, 'ghost'), undefined);
  });
});
