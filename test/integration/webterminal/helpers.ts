// Shared setup of the webterminal tests: a real daemon over TLS on 127.0.0.1:0 with sandbox
// targets, a fake clock, bearer-token users, and clients for the API and the attach WebSocket.
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { createRunner, findBinary } from '../../../shared/exec/index.ts';
import { parseConfig } from '../../../shared/config/index.ts';
import { silentLogger, type Logger } from '../../../shared/log/index.ts';
import { ensureNsInit } from '../../../shared/ns/index.ts';
import { createCA, issueCertificate } from '../../../shared/pki/index.ts';
import { connectExec, type ExecSession } from '../../../shared/stream/client.ts';
import type { ExitStatus } from '../../../shared/stream/index.ts';
import { hashToken } from '../../../daemons/webterminal/auth.ts';
import { configSchema, type WebterminalConfig } from '../../../daemons/webterminal/config.ts';
import type { MachineDeps } from '../../../daemons/webterminal/machine.ts';
import type { SandboxDeps } from '../../../daemons/webterminal/sandbox.ts';
import { startWebterminal, type Webterminal } from '../../../daemons/webterminal/server.ts';
import type { StartTarget } from '../../../daemons/webterminal/sessions.ts';
import { targetStarter } from '../../../daemons/webterminal/targets.ts';

export const TOKENS = { alice: 'alice-secret-token', bob: 'bob-secret-token', olga: 'olga-token' };

export async function sandboxDeps(): Promise<SandboxDeps> {
  const [unshare, gcc, setsid, setpriv] = await Promise.all(
    ['unshare', 'gcc', 'setsid', 'setpriv'].map((b) => findBinary(b)),
  );
  const runner = createRunner({ log: silentLogger(), allow: [unshare!, gcc!] });
  const nsinit = await ensureNsInit(runner);
  return { unshare: unshare!, nsinit, setsid: setsid!, setpriv: setpriv!, term: 'xterm' };
}

export interface Pki {
  ca: string;
  /** the CA's certificate and key, for a daemon that issues certificates from it */
  caCredentials: { certPem: string; keyPem: string };
  server: { cert: string; key: string };
  client(cn: string, groups?: readonly string[]): Promise<{ cert: string; key: string }>;
}

/** A CA (RSA 2048, for speed), a server certificate for localhost/127.0.0.1 and client issuance. */
export async function testPki(): Promise<Pki> {
  const ca = await createCA({ commonName: 'webterminal test CA', bits: 2048, days: 2 });
  const server = await issueCertificate({
    ca,
    commonName: 'localhost',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
    days: 2,
  });
  return {
    ca: ca.certPem,
    caCredentials: ca,
    server: { cert: server.certPem, key: server.keyPem },
    client: async (cn, groups = []) => {
      const c = await issueCertificate({
        ca,
        commonName: cn,
        organizations: groups,
        usage: 'client',
        days: 2,
      });
      return { cert: c.certPem, key: c.keyPem };
    },
  };
}

/** The test config: alice and bob, olga in group operators; `extra` TOML is appended. */
export function testConfig(extra = '', uiDir = '/nonexistent'): WebterminalConfig {
  const toml = `
listen = "127.0.0.1:0"
ui_dir = ${JSON.stringify(uiDir)}
allowed_host_source_list = ["*.seed.example.com"]
# the daemon speaks TLS: startHarness passes the material (these files are never read)
[tls]
cert_file = "/nonexistent/tls.crt"
key_file = "/nonexistent/tls.key"
[auth]
[[auth.tokens]]
user = "alice"
sha256 = "${hashToken(TOKENS.alice)}"
[[auth.tokens]]
user = "bob"
sha256 = "${hashToken(TOKENS.bob)}"
[[auth.tokens]]
user = "olga"
groups = ["operators"]
sha256 = "${hashToken(TOKENS.olga)}"
[[targets]]
name = "shell"
type = "sandbox"
command = ["/bin/sh", "-i"]
[[targets]]
name = "shell-2"
type = "sandbox"
command = ["/bin/sh", "-i"]
[[targets]]
name = "ops"
type = "sandbox"
groups = ["operators"]
${extra}
`;
  return parseConfig(toml, 'webterminal-test.toml', configSchema);
}

/** An API answer; bodies are read loosely (a wrong shape fails the assertions reading it). */
export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: ApiBody;
}

export interface ApiBody {
  id: string;
  creator: string;
  state: string;
  reused: boolean;
  readOnly: boolean;
  viewers: string[];
  attach: { url: string; token: string };
  terminals: unknown[];
  targets: { name: string }[];
  user: string;
  method: string;
  reason: string;
  message: string;
}

export interface Harness {
  wt: Webterminal;
  pki: Pki;
  now: { ms: number };
  api(
    method: string,
    p: string,
    opts?: {
      token?: string;
      body?: unknown;
      headers?: Record<string, string>;
      cert?: Pki['server'];
    },
  ): Promise<ApiResponse>;
}

export async function startHarness(
  opts: {
    config?: WebterminalConfig;
    pki?: Pki;
    clientCa?: boolean;
    log?: Logger;
    /** how machine targets mint their session certificates (default shared/pki) */
    issue?: MachineDeps['issue'];
    /** how sandboxes start (default sandboxDeps(): namespaces only, no cgroups) */
    sandbox?: SandboxDeps;
    /** plain HTTP (no [tls]), as behind a TLS-terminating proxy; the config needs public_origins */
    plainHttp?: boolean;
    /** wraps how targets start (a test slows a start down) */
    wrapStart?: (start: StartTarget) => StartTarget;
  } = {},
): Promise<Harness> {
  const pki = opts.pki ?? (await testPki());
  const now = { ms: Date.now() };
  const log = opts.log ?? silentLogger();
  const config = opts.config ?? testConfig();
  const start = targetStarter(opts.sandbox ?? (await sandboxDeps()), log, {
    ttlMs: config.sessions.ttl,
    timeoutMs: config.sessions.ready_timeout,
    ...(opts.issue === undefined ? {} : { issue: opts.issue }),
  });
  const wt = await startWebterminal(config, {
    log,
    clock: () => now.ms,
    start: opts.wrapStart === undefined ? start : opts.wrapStart(start),
    ...(opts.plainHttp === true
      ? {}
      : { tls: { ...pki.server, ...(opts.clientCa === true ? { clientCa: pki.ca } : {}) } }),
  });
  return {
    wt,
    pki,
    now,
    api: (method, p, o = {}) =>
      new Promise((resolve, reject) => {
        const body = o.body === undefined ? undefined : JSON.stringify(o.body);
        const req = (opts.plainHttp === true ? http : https).request(
          new URL(p, wt.origin),
          {
            method,
            ca: pki.ca,
            ...(o.cert ?? {}),
            headers: {
              ...(o.token === undefined ? {} : { authorization: `Bearer ${o.token}` }),
              ...(body === undefined ? {} : { 'content-type': 'application/json' }),
              ...(o.headers ?? {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let json: unknown;
              try {
                json = text === '' ? {} : JSON.parse(text);
              } catch {
                json = { text };
              }
              resolve({ status: res.statusCode ?? 0, headers: res.headers, json: json as ApiBody });
            });
          },
        );
        req.on('error', reject);
        req.end(body);
      }),
  };
}

/** An attached terminal whose output is collected. */
export interface Term {
  session: ExecSession;
  out: () => string;
  waitFor(text: string | RegExp, ms?: number): Promise<void>;
  status: Promise<ExitStatus>;
}

export async function attachTerm(
  h: Harness,
  url: string,
  headers: Record<string, string>,
): Promise<Term> {
  let out = '';
  const waiters = new Set<() => void>();
  const session = await connectExec(url, {
    tls: { ca: h.pki.ca },
    headers,
    onOutput: (_ch, d) => {
      out += d.toString();
      for (const w of waiters) w();
    },
  });
  return {
    session,
    out: () => out,
    status: session.status,
    waitFor: (text, ms = 10_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (typeof text === 'string' ? out.includes(text) : text.test(out)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no ${String(text)} in terminal output within ${ms} ms: ${JSON.stringify(out.slice(-500))}`,
            ),
          );
        }, ms);
        waiters.add(check);
        check();
      }),
  };
}

/** PIDs of host processes whose argv is exactly `argv`. */
export async function pidsOf(argv: readonly string[]): Promise<number[]> {
  const want = argv.join('\0');
  const pids: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = (await readFile(`/proc/${e}/cmdline`, 'utf8')).replace(/\0$/, '');
      if (cmd === want) pids.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `hostplane-${prefix}-`));
}
