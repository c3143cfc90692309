import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  SESSION_UNIT_PREFIX,
  sessionCertificateOptions,
} from '../../../../daemons/webterminal/machine.ts';

describe('webterminal machine session certificates', () => {
  it('names the user as CN, the groups exactly as O and the session as OU, valid for ttl', () => {
    const ca = { certPem: 'CERT', keyPem: 'KEY' };
    const o = sessionCertificateOptions(ca, { user: 'olga', groups: ['operators'] }, 'S1', 300_000);
    assert.equal(o.commonName, 'olga');
    assert.deepEqual(o.organizations, ['operators']);
    assert.deepEqual(o.organizationalUnits, [`${SESSION_UNIT_PREFIX}S1`]);
    assert.equal(o.usage, 'client');
    assert.equal(o.ca, ca);
    assert.equal((o.days ?? 0) * 86_400_000, 300_000);
  });
});
