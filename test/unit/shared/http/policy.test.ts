import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isAllowed, policyRuleSchema } from '../../../../shared/http/policy.ts';
import { execPath, parseExecPath } from '../../../../shared/http/server.ts';
import { HttpError, statusBody } from '../../../../shared/http/errors.ts';

const rules = [
  policyRuleSchema.parse({ users: ['alice'], namespaces: ['default'] }),
  policyRuleSchema.parse({ groups: ['ops'], machines: ['m1', 'm2'] }),
];

describe('exec policy', () => {
  const cases: {
    name: string;
    user: string;
    groups: string[];
    ns: string;
    m: string;
    want: boolean;
  }[] = [
    {
      name: 'user in any machine of its namespace',
      user: 'alice',
      groups: [],
      ns: 'default',
      m: 'x',
      want: true,
    },
    {
      name: 'user outside its namespace',
      user: 'alice',
      groups: [],
      ns: 'prod',
      m: 'x',
      want: false,
    },
    {
      name: 'group on a listed machine in any namespace',
      user: 'bob',
      groups: ['ops'],
      ns: 'prod',
      m: 'm2',
      want: true,
    },
    {
      name: 'group on another machine',
      user: 'bob',
      groups: ['ops'],
      ns: 'prod',
      m: 'm3',
      want: false,
    },
    {
      name: 'nobody in particular',
      user: 'eve',
      groups: ['dev'],
      ns: 'default',
      m: 'm1',
      want: false,
    },
  ];
  for (const c of cases) {
    it(`${c.want ? 'allows' : 'denies'} ${c.name}`, () => {
      assert.equal(isAllowed(rules, { user: c.user, groups: c.groups }, c.ns, c.m), c.want);
    });
  }

  it('denies everything without rules', () => {
    assert.equal(isAllowed([], { user: 'root', groups: ['system:masters'] }, 'a', 'b'), false);
  });

  it('rejects a rule that names neither users nor groups', () => {
    assert.equal(policyRuleSchema.safeParse({ namespaces: ['*'] }).success, false);
  });
});

describe('exec route', () => {
  it('parses namespace and name and builds the same path back', () => {
    const p = '/apis/compute.ironcore.dev/namespaces/default/machines/m-1.a/exec';
    assert.deepEqual(parseExecPath(p), { namespace: 'default', name: 'm-1.a' });
    assert.equal(execPath({ namespace: 'default', name: 'm-1.a' }), p);
  });

  it('is undefined for other paths and a 400 for invalid names', () => {
    assert.equal(
      parseExecPath('/apis/compute.ironcore.dev/namespaces/default/machines/m1'),
      undefined,
    );
    assert.throws(
      () => parseExecPath('/apis/compute.ironcore.dev/namespaces/Default/machines/m1/exec'),
      (e: unknown) => e instanceof HttpError && e.status === 400,
    );
    assert.throws(
      () => parseExecPath('/apis/compute.ironcore.dev/namespaces/a/machines/%2e%2e/exec'),
      (e: unknown) => e instanceof HttpError && e.status === 400,
    );
    assert.throws(
      () => parseExecPath('/apis/compute.ironcore.dev/namespaces/a/machines/%E0%A4%A/exec'),
      (e: unknown) =>
        e instanceof HttpError && e.status === 400 && /malformed percent-encoding/.test(e.message),
    );
  });

  it('answers errors as a metav1.Status with reason and code', () => {
    const body = JSON.parse(statusBody(new HttpError('TooManyRequests', 'full'))) as Record<
      string,
      unknown
    >;
    assert.deepEqual(
      { kind: body['kind'], reason: body['reason'], code: body['code'], message: body['message'] },
      { kind: 'Status', reason: 'TooManyRequests', code: 429, message: 'full' },
    );
  });
});
