import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  absolutePath,
  byteSize,
  duration,
  fqdn,
  hostPort,
  ipAddress,
  parseByteSize,
  parseDuration,
  parseHostPort,
} from '../../../../shared/config/types.ts';

describe('duration', () => {
  const cases: [string, number | undefined][] = [
    ['250ms', 250],
    ['10s', 10_000],
    ['1m', 60_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
    ['2d', 172_800_000],
    ['10', undefined],
    ['', undefined],
    ['1x', undefined],
    ['s', undefined],
    ['1m 30s', undefined],
  ];
  for (const [text, want] of cases) {
    it(`reads ${JSON.stringify(text)} as ${want === undefined ? 'not a duration' : `${want} ms`}`, () => {
      assert.equal(parseDuration(text), want);
    });
  }
  it('rejects a non-duration with a message that shows the accepted form', () => {
    const r = duration().safeParse('ten');
    assert.ok(!r.success);
    assert.match(r.error.issues[0]?.message ?? '', /expected a duration like .*got "ten"/);
  });
  it('refuses a zero duration (also one that rounds to 0 ms) unless zero is allowed', () => {
    for (const text of ['0s', '0.4ms']) {
      const r = duration().safeParse(text);
      assert.ok(!r.success, text);
      assert.match(r.error.issues[0]?.message ?? '', /at least 1ms, got "0/);
      assert.equal(duration({ min: 0 }).parse(text), 0);
    }
    assert.equal(duration().parse('1ms'), 1);
  });
});

describe('byteSize', () => {
  const cases: [string, number | undefined][] = [
    ['512M', 512 * 1024 ** 2],
    ['1G', 1024 ** 3],
    ['64KiB', 65536],
    ['10MB', 10_000_000],
    ['4096', 4096],
    ['1.5K', 1536],
    ['12 parsecs', undefined],
    ['-1', undefined],
  ];
  for (const [text, want] of cases) {
    it(`reads ${JSON.stringify(text)} as ${want === undefined ? 'not a size' : `${want} bytes`}`, () => {
      assert.equal(parseByteSize(text), want);
    });
  }
  it('accepts a plain integer of bytes and refuses negatives and fractions', () => {
    assert.equal(byteSize().parse(1_048_576), 1_048_576);
    assert.equal(byteSize().safeParse(-5).success, false);
    assert.equal(byteSize().safeParse(1.5).success, false);
  });
});

describe('hostPort', () => {
  it('parses IPv4, bracketed IPv6 and hostnames', () => {
    assert.deepEqual(parseHostPort('0.0.0.0:50051'), { host: '0.0.0.0', port: 50051 });
    assert.deepEqual(parseHostPort('[::1]:443'), { host: '::1', port: 443 });
    assert.deepEqual(parseHostPort('localhost:1'), { host: 'localhost', port: 1 });
    assert.deepEqual(parseHostPort('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  });
  it('refuses a missing port, an unbracketed IPv6 address and ports above 65535', () => {
    for (const bad of [
      'localhost',
      '::1:443',
      '[::1]',
      '1.2.3.4:65536',
      ':80',
      '[nothost]:1',
      'a b:1',
    ]) {
      assert.equal(parseHostPort(bad), undefined, bad);
      assert.equal(hostPort().safeParse(bad).success, false, bad);
    }
  });
});

describe('ipAddress, absolutePath, fqdn', () => {
  it('accepts IPv4 and IPv6 and can restrict the family', () => {
    assert.equal(ipAddress().parse('10.0.0.1'), '10.0.0.1');
    assert.equal(ipAddress().parse('fd00::1'), 'fd00::1');
    assert.equal(ipAddress(4).safeParse('fd00::1').success, false);
    assert.equal(ipAddress(6).safeParse('10.0.0.1').success, false);
    assert.equal(ipAddress().safeParse('10.0.0.256').success, false);
  });
  it('normalizes absolute paths and refuses relative ones', () => {
    assert.equal(absolutePath().parse('/etc//hostplane/../x'), '/etc/x');
    assert.equal(absolutePath().safeParse('etc/x').success, false);
  });
  it('accepts multi-label DNS names, lowercased, and refuses single labels and bad characters', () => {
    assert.equal(fqdn().parse('API.Example.com.'), 'api.example.com');
    assert.equal(
      fqdn().parse('kubernetes.default.svc.cluster.local'),
      'kubernetes.default.svc.cluster.local',
    );
    for (const bad of [
      'localhost',
      'a_b.example.com',
      '-a.example.com',
      '1.2.3.4',
      `${'a'.repeat(64)}.com`,
    ]) {
      assert.equal(fqdn().safeParse(bad).success, false, bad);
    }
  });
});
