import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import jsonpatch from 'fast-json-patch';
import {
  admit,
  BadReviewError,
  ENV_NAME,
  INJECT_LABEL,
} from '../../../../daemons/apiserver-proxy-pod-webhook/mutate.ts';

const FQDN = 'api.example.com';

function review(object: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      object,
      ...extra,
    },
  };
}

function pod(
  spec: Record<string, unknown>,
  labels?: Record<string, string>,
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'default', ...(labels ? { labels } : {}) },
    spec,
  };
}

/** The pod after applying the answer's patch with an independent RFC 6902 implementation. */
function mutated(object: Record<string, unknown>): Record<string, unknown> {
  const out = admit(review(object), FQDN);
  if (out.response.patch === undefined) return object;
  assert.equal(out.response.patchType, 'JSONPatch');
  const ops = JSON.parse(
    Buffer.from(out.response.patch, 'base64').toString('utf8'),
  ) as jsonpatch.Operation[];
  assert.equal(jsonpatch.validate(ops, structuredClone(object)), undefined);
  return jsonpatch.applyPatch(structuredClone(object), ops, true, false).newDocument;
}

const host = { name: ENV_NAME, value: FQDN };

describe('admit', () => {
  const cases: {
    name: string;
    spec: Record<string, unknown>;
    want: Record<string, unknown>;
  }[] = [
    {
      name: 'creates the env array of a container that has none',
      spec: { containers: [{ name: 'a', image: 'x' }] },
      want: { containers: [{ name: 'a', image: 'x', env: [host] }] },
    },
    {
      name: 'appends to an empty env array',
      spec: { containers: [{ name: 'a', env: [] }] },
      want: { containers: [{ name: 'a', env: [host] }] },
    },
    {
      name: 'keeps every other env entry and appends after them',
      spec: { containers: [{ name: 'a', env: [{ name: 'A', value: '1' }, { name: 'B' }] }] },
      want: {
        containers: [{ name: 'a', env: [{ name: 'A', value: '1' }, { name: 'B' }, host] }],
      },
    },
    {
      name: 'never overwrites an existing value, even one from valueFrom',
      spec: {
        containers: [
          { name: 'a', env: [{ name: ENV_NAME, value: 'mine' }] },
          { name: 'b', env: [{ name: ENV_NAME, valueFrom: { fieldRef: { fieldPath: 'x' } } }] },
          { name: 'c' },
        ],
      },
      want: {
        containers: [
          { name: 'a', env: [{ name: ENV_NAME, value: 'mine' }] },
          { name: 'b', env: [{ name: ENV_NAME, valueFrom: { fieldRef: { fieldPath: 'x' } } }] },
          { name: 'c', env: [host] },
        ],
      },
    },
    {
      name: 'adds to initContainers as well as containers',
      spec: {
        initContainers: [{ name: 'i' }, { name: 'j', env: [{ name: 'X', value: 'y' }] }],
        containers: [{ name: 'a' }],
      },
      want: {
        initContainers: [
          { name: 'i', env: [host] },
          { name: 'j', env: [{ name: 'X', value: 'y' }, host] },
        ],
        containers: [{ name: 'a', env: [host] }],
      },
    },
    {
      name: 'replaces an env that is null',
      spec: { containers: [{ name: 'a', env: null }] },
      want: { containers: [{ name: 'a', env: [host] }] },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = mutated(pod(c.spec));
      assert.deepEqual(got['spec'], c.want);
      assert.deepEqual(got['metadata'], pod(c.spec)['metadata']);
    });
  }

  it('answers with the request uid, the same apiVersion and kind, and allowed true', () => {
    const out = admit(review(pod({ containers: [{ name: 'a' }] })), FQDN);
    assert.equal(out.apiVersion, 'admission.k8s.io/v1');
    assert.equal(out.kind, 'AdmissionReview');
    assert.equal(out.response.uid, '705ab4f5-6393-11e8-b7cc-42010a800002');
    assert.equal(out.response.allowed, true);
    const v1beta1 = admit({ ...review(pod({})), apiVersion: 'admission.k8s.io/v1beta1' }, FQDN);
    assert.equal(v1beta1.apiVersion, 'admission.k8s.io/v1beta1');
  });

  it('sends no patch and no patchType when every container already has the variable', () => {
    const out = admit(review(pod({ containers: [{ name: 'a', env: [host] }] })), FQDN);
    assert.deepEqual(out.response, { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
  });

  it('leaves pods labelled inject=false alone', () => {
    const out = admit(
      review(pod({ containers: [{ name: 'a' }] }, { [INJECT_LABEL]: 'false' })),
      FQDN,
    );
    assert.equal(out.response.patch, undefined);
    const other = admit(
      review(pod({ containers: [{ name: 'a' }] }, { [INJECT_LABEL]: 'true' })),
      FQDN,
    );
    assert.notEqual(other.response.patch, undefined);
  });

  it('allows non-Pod objects without a patch', () => {
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', spec: { containers: [{ name: 'a' }] } };
    const out = admit(review(cm, { kind: { group: '', version: 'v1', kind: 'ConfigMap' } }), FQDN);
    assert.deepEqual(out.response, { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
    const deploy = admit(
      review(pod({ containers: [{ name: 'a' }] }), {
        kind: { group: 'apps', version: 'v1', kind: 'Pod' },
      }),
      FQDN,
    );
    assert.equal(deploy.response.patch, undefined);
  });

  it('allows a review without an object (DELETE) without a patch', () => {
    const out = admit(review(undefined, { operation: 'DELETE' }), FQDN);
    assert.equal(out.response.patch, undefined);
  });

  it('rejects what is not an AdmissionReview with a request and a uid', () => {
    const bad: [unknown, RegExp][] = [
      [null, /not a JSON object/],
      [[], /not a JSON object/],
      ['x', /not a JSON object/],
      [{ ...review(pod({})), kind: 'Pod' }, /kind is "Pod"/],
      [{ ...review(pod({})), apiVersion: 'v1' }, /apiVersion is "v1"/],
      [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /no request/],
      [review(pod({}), { uid: undefined }), /no uid/],
      [review(pod({}), { uid: 7 }), /no uid/],
      [review(pod({ containers: {} })), /spec\.containers is not an array/],
      [
        review(pod({ containers: [{ name: 'a', env: 'x' }] })),
        /containers\[0\]\.env is not an array/,
      ],
    ];
    for (const [body, re] of bad) {
      assert.throws(
        () => admit(body, FQDN),
        (err: unknown) => {
          assert.ok(err instanceof BadReviewError);
          assert.match(err.message, re);
          return true;
        },
      );
    }
  });

  it('describes a wrong kind or apiVersion by its type or a short excerpt, never the whole value', () => {
    // deep enough that JSON.stringify overflows the stack
    let deep: unknown = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const long = 'x'.repeat(3 << 20);
    const bad: [unknown, RegExp][] = [
      [{ ...review(pod({})), kind: deep }, /^kind is an array, expected "AdmissionReview"$/],
      [{ ...review(pod({})), apiVersion: deep }, /^apiVersion is an array, expected one of /],
      [{ ...review(pod({})), kind: { a: deep } }, /^kind is an object, /],
      [{ ...review(pod({})), kind: 7 }, /^kind is 7, /],
      [{ ...review(pod({})), kind: undefined }, /^kind is missing, /],
      [
        { ...review(pod({})), kind: long },
        /^kind is "x{64}"\.\.\. \(a string of 3145728 characters\), /,
      ],
      [{ ...review(pod({})), apiVersion: long }, /^apiVersion is "x{64}"\.\.\. /],
    ];
    for (const [body, re] of bad) {
      assert.throws(
        () => admit(body, FQDN),
        (err: unknown) => {
          assert.ok(err instanceof BadReviewError, String(err));
          assert.match(err.message, re);
          assert.ok(err.message.length < 200, `message of ${err.message.length} characters`);
          return true;
        },
      );
    }
  });
});
