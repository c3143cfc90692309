// The machine target: a console through exec-gateway, reached with a client certificate minted
// for this one session (CN = user, O = exactly the user's groups, OU naming the session) from the target's
// session CA. The certificate lives until notAfter = now + ttl and only in this process's memory:
// it opens exactly one upstream connection and is then dropped, never reused. A certificate
// cannot be un-issued, so "useless after cleanup" rests on that: the upstream session is closed
// at cleanup, nothing else ever held the key, and the gateway refuses it once ttl has passed.
import { readFile } from 'node:fs/promises';
import { execPath } from '../../shared/http/server.ts';
import type { Identity } from '../../shared/http/identity.ts';
import type { Logger } from '../../shared/log/index.ts';
import { issueCertificate, type Credentials, type IssueOptions } from '../../shared/pki/index.ts';
import { connectExec } from '../../shared/stream/client.ts';
import type { TermSize } from '../../shared/stream/index.ts';
import type { TargetConfig } from './config.ts';
import type { TerminalConsole } from './sandbox.ts';

/** Keystrokes the exec session may hold unsent before the browser's socket is paused, and the
 * level at which it reads again. */
const INPUT_HIGH_WATER = 1 << 20;
const INPUT_LOW_WATER = 1 << 18;

export type MachineTargetConfig = Extract<TargetConfig, { type: 'machine' }>;

/** Subject OU that names the session a certificate was minted for (an OU, so never a group). */
export const SESSION_UNIT_PREFIX = 'hostplane-webterminal-session=';

export interface MachineDeps {
  /** validity of a session certificate: the session ttl */
  ttlMs: number;
  /** connect and handshake with the gateway within this (ready_timeout) */
  timeoutMs: number;
  /** reads the target's CA files (default: the filesystem, on every session, so rotation works) */
  readFile?: (file: string) => Promise<string>;
  /** mints a certificate (default shared/pki issueCertificate) */
  issue?: (opts: IssueOptions) => Promise<Credentials>;
}

/** What the session certificate of `user` in session `sessionId` says (a pure function). */
export function sessionCertificateOptions(
  ca: Credentials,
  user: Identity,
  sessionId: string,
  ttlMs: number,
): IssueOptions {
  return {
    ca,
    commonName: user.user,
    organizations: [...user.groups],
    organizationalUnits: [`${SESSION_UNIT_PREFIX}${sessionId}`],
    usage: 'client',
    days: ttlMs / 86_400_000,
  };
}

/** Opens the console of `target` for `session`; resolves once the gateway accepted the upgrade. */
export async function startMachine(
  deps: MachineDeps,
  target: MachineTargetConfig,
  session: { id: string; user: Identity },
  size: TermSize,
  log: Logger,
): Promise<TerminalConsole> {
  const nn = `${target.namespace}/${target.machine}`;
  const read = deps.readFile ?? ((f: string) => readFile(f, 'utf8'));
  let files: [string, string, string];
  try {
    files = await Promise.all([
      read(target.ca_file),
      read(target.session_ca_cert_file),
      read(target.session_ca_key_file),
    ]);
  } catch (err) {
    throw new Error(`opening machine ${nn}: reading CA files: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const [gatewayCa, caCert, caKey] = files;
  const cred = await (deps.issue ?? issueCertificate)(
    sessionCertificateOptions(
      { certPem: caCert, keyPem: caKey },
      session.user,
      session.id,
      deps.ttlMs,
    ),
  );
  const url = new URL(
    `${execPath({ namespace: target.namespace, name: target.machine })}?tty=true`,
    target.gateway,
  );
  let sink: ((d: Buffer) => void) | undefined;
  const early: Buffer[] = [];
  const exec = await connectExec(url, {
    tls: { ca: gatewayCa, cert: cred.certPem, key: cred.keyPem },
    timeoutMs: deps.timeoutMs,
    onOutput: (_ch, d) => {
      if (sink === undefined) early.push(d);
      else sink(d);
    },
  }).catch((err: unknown) => {
    throw new Error(`opening machine ${nn} through ${url.origin}: ${(err as Error).message}`, {
      cause: err,
    });
  });
  exec.resize(size);
  log.info({ machine: nn, gateway: url.origin }, 'machine console opened');
  const done = exec.status.then((status) => {
    log.info({ machine: nn, status }, 'machine console ended');
    return status;
  });
  return {
    onOutput(fn) {
      sink = fn;
      for (const b of early.splice(0)) fn(b);
    },
    write: (d) => exec.write(d, INPUT_HIGH_WATER),
    onceInputDrained: (fn) => {
      exec.onDrain(INPUT_LOW_WATER, fn);
    },
    resize: (s) => {
      exec.resize(s);
    },
    // a lagging browser stops the reading of the upstream socket: TCP pushes back to the gateway
    // and on to the machine, so the daemon holds at most its high-water mark per session
    pause: () => {
      exec.pause();
    },
    resume: () => {
      exec.resume();
    },
    done,
    async kill() {
      exec.close();
      await done;
    },
    pids: [],
  };
}
