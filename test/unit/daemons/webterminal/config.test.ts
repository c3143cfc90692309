import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseConfig } from '../../../../shared/config/index.ts';
import { configSchema } from '../../../../daemons/webterminal/config.ts';
import { lookupUser, sandboxArgv } from '../../../../daemons/webterminal/sandbox.ts';
import { contentSecurityPolicy } from '../../../../daemons/webterminal/server.ts';

const parse = (toml: string) => parseConfig(toml, 'webterminal.toml', configSchema);

describe('webterminal config', () => {
  it('reads the shipped example, every key commented out, as the defaults', () => {
    const c = parse(readFileSync('etc/hostplane/webterminal.toml', 'utf8'));
    assert.equal(c.sessions.ttl, 300_000);
    assert.equal(c.sessions.ready_timeout, 10_000);
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 8443 });
  });

  it('refuses plain HTTP off loopback', () => {
    assert.throws(() => parse('listen = "0.0.0.0:80"\n'), /plain HTTP is allowed only on loopback/);
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
