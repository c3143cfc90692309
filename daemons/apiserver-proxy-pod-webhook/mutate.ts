// The webhook's decision as a pure function: an AdmissionReview in, the AdmissionReview to answer
// with out. It only ever adds KUBERNETES_SERVICE_HOST where a container lacks it.

/** The env variable the webhook points at the API server's FQDN. */
export const ENV_NAME = 'KUBERNETES_SERVICE_HOST';
/** Pods with this label set to "false" are left alone. */
export const INJECT_LABEL = 'apiserver-proxy.networking.gardener.cloud/inject';
/** AdmissionReview versions the webhook answers (it echoes the request's). */
export const REVIEW_API_VERSIONS: readonly string[] = [
  'admission.k8s.io/v1',
  'admission.k8s.io/v1beta1',
];

/** One RFC 6902 operation; the webhook only emits `add`. */
export interface PatchOp {
  op: 'add';
  path: string;
  value: unknown;
}

export interface AdmissionResponse {
  uid: string;
  allowed: true;
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch document */
  patch?: string;
}

export interface AdmissionReviewOut {
  apiVersion: string;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

/** A review the webhook cannot answer; `message` says which part of the body is wrong. */
export class BadReviewError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadReviewError';
  }
}

/**
 * The answer to `review` (a parsed JSON body): allowed, with a JSON Patch adding
 * `KUBERNETES_SERVICE_HOST=<fqdn>` to each container and initContainer that lacks it.
 * Throws BadReviewError when `review` is not an AdmissionReview with a request and uid.
 */
export function admit(review: unknown, fqdn: string): AdmissionReviewOut {
  if (!isObject(review)) throw new BadReviewError('body is not a JSON object');
  const { apiVersion, kind, request } = review;
  if (kind !== 'AdmissionReview') {
    throw new BadReviewError(`kind is ${describeValue(kind)}, expected "AdmissionReview"`);
  }
  if (typeof apiVersion !== 'string' || !REVIEW_API_VERSIONS.includes(apiVersion)) {
    throw new BadReviewError(
      `apiVersion is ${describeValue(apiVersion)}, expected one of ${REVIEW_API_VERSIONS.join(', ')}`,
    );
  }
  if (!isObject(request)) throw new BadReviewError('review has no request');
  const { uid } = request;
  if (typeof uid !== 'string' || uid === '') {
    throw new BadReviewError('request has no uid');
  }
  const ops = isPod(request) ? podPatch(request['object'], fqdn) : [];
  const response: AdmissionResponse = { uid, allowed: true };
  if (ops.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(ops)).toString('base64');
  }
  return { apiVersion, kind: 'AdmissionReview', response };
}

/** The operations that give every container of `pod` the env variable; [] when none lacks it. */
export function podPatch(pod: unknown, fqdn: string): PatchOp[] {
  // DELETE reviews carry no object: nothing to mutate
  if (pod === undefined || pod === null) return [];
  if (!isObject(pod)) throw new BadReviewError('request.object is not an object');
  const metadata = pod['metadata'];
  if (isObject(metadata) && isObject(metadata['labels'])) {
    if (metadata['labels'][INJECT_LABEL] === 'false') return [];
  }
  const spec = pod['spec'];
  if (spec === undefined || spec === null) return [];
  if (!isObject(spec)) throw new BadReviewError('request.object.spec is not an object');
  return [
    ...containerOps(spec['initContainers'], 'initContainers', fqdn),
    ...containerOps(spec['containers'], 'containers', fqdn),
  ];
}

function containerOps(list: unknown, field: string, fqdn: string): PatchOp[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) {
    throw new BadReviewError(`request.object.spec.${field} is not an array`);
  }
  const entry = { name: ENV_NAME, value: fqdn };
  const ops: PatchOp[] = [];
  list.forEach((c: unknown, i) => {
    if (!isObject(c))
      throw new BadReviewError(`request.object.spec.${field}[${i}] is not an object`);
    const env = c['env'];
    const base = `/spec/${field}/${i}/env`;
    // an absent (or null) env is created whole: `/env/-` needs the array to exist
    if (env === undefined || env === null) {
      ops.push({ op: 'add', path: base, value: [entry] });
      return;
    }
    if (!Array.isArray(env)) {
      throw new BadReviewError(`request.object.spec.${field}[${i}].env is not an array`);
    }
    if (env.some((e: unknown) => isObject(e) && e['name'] === ENV_NAME)) return;
    ops.push({ op: 'add', path: `${base}/-`, value: entry });
  });
  return ops;
}

/** Whether the review is about a core/v1 Pod (request.kind, else the object's own kind). */
function isPod(request: Record<string, unknown>): boolean {
  const gvk = request['kind'];
  if (isObject(gvk)) {
    return gvk['kind'] === 'Pod' && (gvk['group'] === '' || gvk['group'] === undefined);
  }
  const obj = request['object'];
  return isObject(obj) && obj['kind'] === 'Pod' && (obj['apiVersion'] ?? 'v1') === 'v1';
}

/** Longest excerpt of a wrong string value that an error message quotes. */
export const MAX_EXCERPT = 64;

/**
 * A wrong value as an error message shows it: a short string or scalar as JSON, a long string
 * cut to MAX_EXCERPT characters, anything else by its type. Never the whole input: a client
 * controls it (megabytes, or nesting deep enough to overflow JSON.stringify).
 */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') {
    if (v.length <= MAX_EXCERPT) return JSON.stringify(v);
    return `${JSON.stringify(v.slice(0, MAX_EXCERPT))}... (a string of ${v.length} characters)`;
  }
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
