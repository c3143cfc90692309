// The .deb packages for real, in the test VM (npm run test:e2e): apt install, systemctl start
// through READY, jobs with cgroup limits through the installed server, config edits, broken
// config, remove, purge, reinstall. One boot; the steps run in order and build on each other.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { createRunner } from '../../shared/exec/index.ts';
import type { RunResult } from '../../shared/exec/types.ts';
import { silentLogger } from '../../shared/log/index.ts';
import { generateCerts } from '../../scripts/generate-certs.ts';
import { issueCertificate, type CertificateUsage } from '../../shared/pki/index.ts';
import { connectExec } from '../../shared/stream/client.ts';
import { vmSkipReason, waitFor } from '../vm/helpers.ts';

const skip = await vmSkipReason();
const DEB_DIR = path.resolve(import.meta.dirname, '../../dist/deb');
const LOCAL_DEBS = '/root/hostplane-debs';
const PKI = '/root/hostplane-pki';
const CREDS = `${PKI}/client1`;

const BIN = {
  aptGet: '/usr/bin/apt-get',
  dpkgQuery: '/usr/bin/dpkg-query',
  systemctl: '/usr/bin/systemctl',
  journalctl: '/usr/bin/journalctl',
  systemdAnalyze: '/usr/bin/systemd-analyze',
  cuThor: '/usr/bin/cu-thor',
  machineExec: '/usr/bin/machine-exec',
  ip: '/usr/sbin/ip',
  iptablesSave: '/usr/sbin/iptables-save',
  ip6tablesSave: '/usr/sbin/ip6tables-save',
  pgrep: '/usr/bin/pgrep',
} as const;

const runner = createRunner({ log: silentLogger(), allow: Object.values(BIN) });
const run = (argv: readonly string[], okCodes: readonly number[] = [0]): Promise<RunResult> =>
  // TCG: apt and node start slowly; behaviour is asserted, never timings
  runner.run(argv, {
    okCodes,
    timeoutMs: 600_000,
    env: { DEBIAN_FRONTEND: 'noninteractive', HOME: '/root' },
  });
const systemctl = (...args: string[]): Promise<RunResult> =>
  run([BIN.systemctl, ...args], [0, 1, 2, 3, 4, 5, 6]);
const prop = async (unit: string, name: string): Promise<string> =>
  (await systemctl('show', '-P', name, unit)).stdout.trim();
const cuThor = (server: string, ...args: string[]): Promise<RunResult> =>
  runner.run([BIN.cuThor, '--server', server, ...args], {
    okCodes: [0, 1, 2, 3, 4],
    timeoutMs: 300_000,
    env: { CUTHOR_CLIENT_CRED_LOCATION: CREDS, HOME: '/root' },
  });

/**
 * stderr without node's own warnings: grpc-js sets the TLS servername to the target, and node 20
 * warns (DEP0123) when that is an IP address (reported to the cu-thor owner).
 */
const withoutNodeWarnings = (stderr: string): string =>
  stderr.replace(/^\(node:\d+\) \[DEP0123\].*\n(\(Use `node --trace-deprecation.*\n)?/m, '');

let debs: string[] = [];
const packaged = (pkg: string): boolean => debs.some((d) => d.startsWith(`${pkg}_`));
const packages = (): string[] => debs.map((d) => d.split('_')[0] ?? d);
/** Daemon packages built in this run: those holding a unit. */
const DAEMONS: Record<string, string> = {
  'hostplane-cu-thor-server': 'cu-thor-server',
  'hostplane-apiserver-proxy-sidecar': 'apiserver-proxy-sidecar',
  'hostplane-apiserver-proxy-pod-webhook': 'apiserver-proxy-pod-webhook',
  'hostplane-machinebroker': 'machinebroker',
  'hostplane-exec-gateway': 'exec-gateway',
  'hostplane-machinepoollet': 'machinepoollet',
  'hostplane-webterminal': 'webterminal',
};
const units = (): string[] =>
  packages().flatMap((p) => (DAEMONS[p] !== undefined ? [DAEMONS[p]] : []));

const SERVER_CONF = '/etc/hostplane/cu-thor-server.toml';
const serverConfig = (
  port: number,
  certFile = '/etc/hostplane/cu-thor-server/server.crt',
): string =>
  `# written by test/e2e/packages.test.ts
listen = "127.0.0.1:${port}"
stop_grace = "2s"

[tls]
ca_file = "/etc/hostplane/cu-thor-server/ca.crt"
cert_file = "${certFile}"
key_file = "/etc/hostplane/cu-thor-server/server.key"

[limits.max]
memory_max = "1GiB"
`;

async function aptInstall(): Promise<RunResult> {
  return run([
    BIN.aptGet,
    'install',
    '-y',
    '--no-install-recommends',
    ...debs.map((d) => `${LOCAL_DEBS}/${d}`),
  ]);
}

/** What the sidecar put on the host: its addresses on lo and its chains, as text. */
async function sidecarTraces(): Promise<{ addrs: string; rules: string }> {
  const addrs = (await run([BIN.ip, '-o', 'addr', 'show'])).stdout;
  const rules = (await run([BIN.iptablesSave])).stdout + (await run([BIN.ip6tablesSave])).stdout;
  return {
    addrs: addrs
      .split('\n')
      .filter((l) => /10\.123\.0\.1|fd00:123::1|10\.124\.0\.1/.test(l))
      .join('\n'),
    rules: rules
      .split('\n')
      .filter((l) => l.includes('HP-APIPROXY'))
      .join('\n'),
  };
}

describe(
  'the hostplane .deb packages on Debian with systemd',
  { skip, timeout: 40 * 60_000 },
  () => {
    before(async () => {
      debs = (await readdir(DEB_DIR)).filter((n) => n.endsWith('.deb')).sort();
      assert.ok(
        packaged('hostplane-cu-thor-server'),
        `no cu-thor-server .deb in ${DEB_DIR}: npm run package`,
      );
      // apt reads local .deb files as the _apt user: copy them off the 9p share
      await mkdir(LOCAL_DEBS, { recursive: true, mode: 0o755 });
      for (const d of debs) await copyFile(path.join(DEB_DIR, d), path.join(LOCAL_DEBS, d));
      console.log(`# packages: ${debs.join(' ')}`);
      // certificates before the clock-heavy steps; smaller CA key than production to stay fast
      await rm(PKI, { recursive: true, force: true });
      await generateCerts({ out: PKI, caBits: 2048, leafBits: 2048 });
    });

    after(async () => {
      await systemctl('stop', ...units());
    });

    it('apt installs every package offline, enables the daemons and starts none of them', async () => {
      const r = await aptInstall();
      assert.equal(r.code, 0, r.stderr);
      for (const p of packages()) {
        const q = await run([BIN.dpkgQuery, '-W', '-f=${Status}', p]);
        assert.equal(q.stdout, 'install ok installed', p);
      }
      for (const u of units()) {
        assert.equal((await systemctl('is-enabled', u)).stdout.trim(), 'enabled', u);
        assert.equal((await systemctl('is-active', u)).stdout.trim(), 'inactive', u);
      }
      assert.ok(existsSync('/usr/lib/hostplane/hostplane-nsinit'));
      assert.ok(existsSync('/usr/share/hostplane/proto/jobexec/v1/jobexec.proto'));
      if (packaged('hostplane-exec-gateway')) {
        assert.match(await readFile('/etc/passwd', 'utf8'), /^hostplane-exec:/m, 'sysusers ran');
      }
    });

    it('systemd-analyze verify finds nothing to complain about in the installed units', async () => {
      for (const u of units()) {
        // --man=no: the image has no man-db; the man page is checked to be installed instead
        const r = await run(
          [BIN.systemdAnalyze, 'verify', '--man=no', `/usr/lib/systemd/system/${u}.service`],
          [0, 1],
        );
        assert.ok(existsSync(`/usr/share/man/man8/${u}.8.gz`), `${u}(8) is installed`);
        assert.equal(r.code, 0, `${u}: ${r.stderr}`);
        assert.equal(r.stderr.trim(), '', `${u}: ${r.stderr}`);
        const sec = await run(
          [BIN.systemdAnalyze, 'security', '--no-pager', `${u}.service`],
          [0, 1],
        );
        const overall = sec.stdout.split('\n').find((l) => l.includes('Overall exposure level'));
        console.log(`# security ${u}: ${overall?.replace(/^.*: /, '') ?? sec.stdout}`);
      }
    });

    it('cu-thor-server with a real config becomes active through READY and says what it serves', async () => {
      await mkdir('/etc/hostplane/cu-thor-server', { recursive: true, mode: 0o700 });
      for (const f of ['ca.crt', 'server.crt', 'server.key']) {
        await copyFile(`${PKI}/server/${f}`, `/etc/hostplane/cu-thor-server/${f}`);
      }
      await writeFile(SERVER_CONF, serverConfig(50051));
      // Type=notify: `systemctl start` returns only once the daemon sent READY=1 (or failed)
      const r = await systemctl('start', 'cu-thor-server');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await prop('cu-thor-server', 'ActiveState'), 'active');
      assert.equal(await prop('cu-thor-server', 'Type'), 'notify');
      assert.notEqual(await prop('cu-thor-server', 'StatusText'), '', 'the daemon sent STATUS=');
      const list = await cuThor('127.0.0.1:50051', 'list');
      assert.equal(list.code, 0, list.stderr);
    });

    it('cu-thor runs a job through the installed server and streams its output', async () => {
      const start = await cuThor(
        '127.0.0.1:50051',
        'start',
        '--command',
        'sh',
        '--',
        '-c',
        'for i in 1 2 3; do echo "line $i"; sleep 1; done; echo "to stderr" >&2',
      );
      assert.equal(start.code, 0, start.stderr);
      const id = start.stdout.trim();
      // started while the job still runs: the stream follows it live until it ends
      const out = await cuThor('127.0.0.1:50051', 'output', '--id', id);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(out.stdout, 'line 1\nline 2\nline 3\n');
      assert.equal(withoutNodeWarnings(out.stderr), 'to stderr\n');
      const status = JSON.parse(
        (await cuThor('127.0.0.1:50051', 'status', '--id', id, '--json')).stdout,
      ) as {
        status: string;
        exitCode: number;
      };
      assert.equal(status.status, 'exited');
      assert.equal(status.exitCode, 0);
    });

    it('a memory hog is OOM-killed by its memory.max', async () => {
      const start = await cuThor(
        '127.0.0.1:50051',
        'start',
        '--memory-max',
        '32M',
        '--command',
        'tail',
        '/dev/zero',
      );
      assert.equal(start.code, 0, start.stderr);
      const id = start.stdout.trim();
      await cuThor('127.0.0.1:50051', 'output', '--id', id);
      const status = JSON.parse(
        (await cuThor('127.0.0.1:50051', 'status', '--id', id, '--json')).stdout,
      ) as {
        status: string;
        signal: string | null;
        usage: { memoryPeakBytes: number | null };
      };
      assert.equal(status.status, 'oom_killed');
      assert.equal(status.signal, 'SIGKILL');
      assert.ok(
        (status.usage.memoryPeakBytes ?? 0) <= 33 << 20,
        `peak ${status.usage.memoryPeakBytes}`,
      );
    });

    it('a busy loop is throttled by its cpu.max', async () => {
      // the job reads its own cgroup's files: cpu.max as set, and cpu.stat after 3 s of spinning
      const script =
        'cg=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); cat "$cg/cpu.max"; ' +
        'end=$(($(date +%s) + 3)); while [ $(date +%s) -lt $end ]; do :; done; cat "$cg/cpu.stat"';
      const start = await cuThor(
        '127.0.0.1:50051',
        'start',
        '--cpu-percent',
        '10',
        '--command',
        'sh',
        '--',
        '-c',
        script,
      );
      assert.equal(start.code, 0, start.stderr);
      const out = await cuThor('127.0.0.1:50051', 'output', '--id', start.stdout.trim());
      assert.equal(out.code, 0, out.stderr);
      const lines = out.stdout.split('\n');
      assert.equal(lines[0], '10000 100000');
      const throttled = Number(/^nr_throttled (\d+)$/m.exec(out.stdout)?.[1] ?? 'NaN');
      assert.ok(throttled > 0, out.stdout);
    });

    it('a daemon that cannot get ready fails its unit', async () => {
      await writeFile(
        SERVER_CONF,
        serverConfig(50051, '/etc/hostplane/cu-thor-server/missing.crt'),
      );
      const r = await systemctl('restart', 'cu-thor-server');
      assert.notEqual(r.code, 0, 'systemctl restart reports the failed start');
      // Restart=on-failure tries again later (a certificate may yet appear): failed or waiting
      assert.match(await prop('cu-thor-server', 'ActiveState'), /^(failed|activating)$/);
      assert.equal(await prop('cu-thor-server', 'Result'), 'exit-code');
      await systemctl('stop', 'cu-thor-server');
      const journal = await run([
        BIN.journalctl,
        '-u',
        'cu-thor-server',
        '-o',
        'cat',
        '--no-pager',
        '-n',
        '50',
      ]);
      assert.match(journal.stdout, /missing\.crt/);
    });

    it('an edited TOML value is in effect after a restart, and reload keeps the process', async () => {
      await writeFile(SERVER_CONF, serverConfig(50061));
      await systemctl('reset-failed', 'cu-thor-server');
      const r = await systemctl('restart', 'cu-thor-server');
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await cuThor('127.0.0.1:50061', 'list')).code, 0);
      assert.equal((await cuThor('127.0.0.1:50051', 'list')).code, 3, 'the old port is closed');
      const pid = await prop('cu-thor-server', 'MainPID');
      const reload = await systemctl('reload', 'cu-thor-server');
      assert.equal(reload.code, 0, reload.stderr);
      await waitFor('active after reload', async () =>
        (await prop('cu-thor-server', 'ActiveState')) === 'active' ? true : undefined,
      );
      assert.equal(await prop('cu-thor-server', 'MainPID'), pid);
      assert.equal((await cuThor('127.0.0.1:50061', 'list')).code, 0);
    });

    it('a broken TOML fails the start with the file and line in the journal', async () => {
      await writeFile(SERVER_CONF, 'listen = "127.0.0.1:50061"\nstop_grace = "2s\n[tls]\n');
      const r = await systemctl('restart', 'cu-thor-server');
      assert.notEqual(r.code, 0);
      assert.equal(await prop('cu-thor-server', 'ActiveState'), 'failed');
      assert.equal(await prop('cu-thor-server', 'ExecMainStatus'), '78');
      const journal = await run([
        BIN.journalctl,
        '-u',
        'cu-thor-server',
        '-o',
        'cat',
        '--no-pager',
        '-n',
        '50',
      ]);
      assert.match(journal.stdout, /\/etc\/hostplane\/cu-thor-server\.toml:2/);
      // back to a good config, running, for the remove step
      await writeFile(SERVER_CONF, serverConfig(50051));
      await systemctl('reset-failed', 'cu-thor-server');
      assert.equal((await systemctl('start', 'cu-thor-server')).code, 0);
    });

    it('the sidecar keeps its addresses and rules while running and removes them on stop', async (t) => {
      if (!packaged('hostplane-apiserver-proxy-sidecar')) {
        t.skip('hostplane-apiserver-proxy-sidecar is not packaged yet');
        return;
      }
      await writeFile(
        '/etc/hostplane/apiserver-proxy-sidecar.toml',
        [
          'ip_address = ["10.123.0.1", "fd00:123::1"]',
          'kubernetes_service_ip_address = "10.124.0.1"',
          'setup_iptables = true',
          'cleanup = true',
          'sync_interval = "5s"',
          '',
        ].join('\n'),
      );
      const r = await systemctl('start', 'apiserver-proxy-sidecar');
      assert.equal(r.code, 0, r.stderr);
      const on = await sidecarTraces();
      assert.match(on.addrs, /10\.123\.0\.1/);
      assert.match(on.addrs, /fd00:123::1/);
      assert.match(on.addrs, /10\.124\.0\.1/);
      assert.match(on.rules, /-d 10\.123\.0\.1\/32 -p tcp -m tcp --dport 443 -j CT --notrack/);
      assert.match(on.rules, /-d fd00:123::1\/128 -p tcp -m tcp --dport 443 -j ACCEPT/);
      assert.equal((await systemctl('stop', 'apiserver-proxy-sidecar')).code, 0);
      assert.deepEqual(await sidecarTraces(), { addrs: '', rules: '' });
      // running again for the remove step
      assert.equal((await systemctl('start', 'apiserver-proxy-sidecar')).code, 0);
    });

    it('the pod webhook patches a POSTed AdmissionReview', async (t) => {
      if (!packaged('hostplane-apiserver-proxy-pod-webhook')) {
        t.skip('hostplane-apiserver-proxy-pod-webhook is not packaged yet');
        return;
      }
      const dir = '/etc/hostplane/apiserver-proxy-pod-webhook';
      await mkdir(dir, { recursive: true, mode: 0o755 });
      await copyFile(`${PKI}/server/server.crt`, `${dir}/tls.crt`);
      await copyFile(`${PKI}/server/server.key`, `${dir}/tls.key`);
      await writeFile(
        '/etc/hostplane/apiserver-proxy-pod-webhook.toml',
        'apiserver_fqdn = "api.example.test"\nhost = "127.0.0.1"\nport = 9443\n',
      );
      const r = await systemctl('start', 'apiserver-proxy-pod-webhook');
      assert.equal(r.code, 0, r.stderr);
      const review = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: 'e2e-1',
          kind: { group: '', version: 'v1', kind: 'Pod' },
          resource: { group: '', version: 'v1', resource: 'pods' },
          operation: 'CREATE',
          object: {
            apiVersion: 'v1',
            kind: 'Pod',
            spec: { containers: [{ name: 'app', image: 'x' }] },
          },
        },
      };
      const ca = await readFile(`${PKI}/ca.crt`);
      const body = await new Promise<string>((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            port: 9443,
            path: '/webhook/pod-apiserver-env',
            method: 'POST',
            ca,
            headers: { 'content-type': 'application/json' },
          },
          (res) => {
            let s = '';
            res.setEncoding('utf8').on('data', (c: string) => (s += c));
            res.on('end', () => {
              resolve(s);
            });
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify(review));
      });
      const answer = JSON.parse(body) as {
        response: { uid: string; allowed: boolean; patch?: string };
      };
      assert.equal(answer.response.uid, 'e2e-1');
      assert.equal(answer.response.allowed, true);
      const patch = Buffer.from(answer.response.patch ?? '', 'base64').toString();
      assert.match(patch, /KUBERNETES_SERVICE_HOST/);
      assert.match(patch, /api\.example\.test/);
    });

    it('machine-exec reaches a sandboxed shell through the installed gateway, poollet and broker', async (t) => {
      const chain = [
        'hostplane-machinebroker',
        'hostplane-machinepoollet',
        'hostplane-exec-gateway',
        'hostplane-machine-exec',
      ];
      const missing = chain.filter((p) => !packaged(p));
      if (missing.length > 0) {
        t.skip(`not packaged yet: ${missing.join(', ')}`);
        return;
      }
      const ca = {
        certPem: await readFile(`${PKI}/ca.crt`, 'utf8'),
        keyPem: await readFile(`${PKI}/ca.key`, 'utf8'),
      };
      const gid = Number(
        /^hostplane-exec:[^:]*:(\d+):/m.exec(await readFile('/etc/group', 'utf8'))?.[1],
      );
      assert.ok(Number.isInteger(gid), 'the hostplane-exec group exists');
      /** certificate and key into dir, the key readable by the daemons' group only */
      const put = async (
        dir: string,
        name: string,
        cn: string,
        usage: CertificateUsage,
      ): Promise<void> => {
        const c = await issueCertificate({
          ca,
          commonName: cn,
          usage,
          ...(usage === 'server' ? { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] } : {}),
        });
        await mkdir(dir, { recursive: true, mode: 0o755 });
        await writeFile(`${dir}/${name}.crt`, c.certPem, { mode: 0o644 });
        await writeFile(`${dir}/${name}.key`, c.keyPem, { mode: 0o640 });
        await chown(`${dir}/${name}.key`, 0, gid);
      };
      const gw = '/etc/hostplane/exec-gateway';
      const pl = '/etc/hostplane/machinepoollet';
      await put(gw, 'server', 'localhost', 'server');
      await put(gw, 'client', 'exec-gateway', 'client');
      await put(pl, 'server', 'localhost', 'server');
      for (const f of [`${gw}/users-ca.crt`, `${gw}/pools-ca.crt`, `${pl}/ca.crt`]) {
        await copyFile(`${PKI}/ca.crt`, f);
      }
      const broker = await readFile('/etc/hostplane/machinebroker.toml', 'utf8');
      await writeFile(
        '/etc/hostplane/machinebroker.toml',
        `${broker}\n[[machines]]\nid = "m1"\nnamespace = "default"\nname = "m1"\ntarget = { type = "sandbox", command = ["/bin/sh"] }\n`,
      );
      await writeFile(
        '/etc/hostplane/machinepoollet.toml',
        `listen = "127.0.0.1:20250"\n[tls]\nca_file = "${pl}/ca.crt"\ncert_file = "${pl}/server.crt"\nkey_file = "${pl}/server.key"\n` +
          `[[policy]]\nusers = ["alice"]\n`,
      );
      await writeFile(
        '/etc/hostplane/exec-gateway.toml',
        `listen = "127.0.0.1:8443"\n` +
          `[tls]\nca_file = "${gw}/users-ca.crt"\ncert_file = "${gw}/server.crt"\nkey_file = "${gw}/server.key"\n` +
          `[upstream_tls]\nca_file = "${gw}/pools-ca.crt"\ncert_file = "${gw}/client.crt"\nkey_file = "${gw}/client.key"\n` +
          `[[policy]]\nusers = ["alice"]\n` +
          `[[pools]]\nname = "pool-a"\nport = 20250\naddresses = [{ type = "InternalIP", address = "127.0.0.1" }]\n` +
          `[[machines]]\nnamespace = "default"\nname = "m1"\npool = "pool-a"\n`,
      );
      for (const u of ['machinebroker', 'machinepoollet', 'exec-gateway']) {
        const r = await systemctl('start', u);
        const journal =
          r.code === 0
            ? ''
            : (await run([BIN.journalctl, '-u', u, '-o', 'cat', '--no-pager', '-n', '30'])).stdout;
        assert.equal(r.code, 0, `${u}: ${r.stderr}${journal}`);
        assert.equal(await prop(u, 'ActiveState'), 'active', u);
      }
      const alice = await issueCertificate({ ca, commonName: 'alice', usage: 'client' });
      const creds = '/root/alice-creds';
      await mkdir(creds, { recursive: true, mode: 0o700 });
      await copyFile(`${PKI}/ca.crt`, `${creds}/ca.crt`);
      await writeFile(`${creds}/client.crt`, alice.certPem);
      await writeFile(`${creds}/client.key`, alice.keyPem, { mode: 0o600 });
      const r = await runner.run(
        [
          BIN.machineExec,
          '--gateway',
          'https://127.0.0.1:8443',
          '--creds',
          creds,
          '--no-tty',
          'default/m1',
        ],
        {
          input: 'echo "hello from pid $$"\nexit 3\n',
          okCodes: [0, 1, 2, 3],
          timeoutMs: 300_000,
        },
      );
      assert.equal(r.code, 3, r.stderr);
      // a new PID namespace: the shell is one of its first processes
      assert.match(r.stdout, /^hello from pid [1-9]$/m);
    });

    it('webterminal serves its packaged browser UI once active', async (t) => {
      if (!packaged('hostplane-webterminal')) {
        t.skip('hostplane-webterminal is not packaged yet');
        return;
      }
      // the shipped config (plain HTTP on loopback), on a port the gateway does not use, with the
      // public_origins plain HTTP needs (here the daemon's own address: no proxy in front)
      const shipped = await readFile('/etc/hostplane/webterminal.toml', 'utf8');
      await writeFile(
        '/etc/hostplane/webterminal.toml',
        `listen = "127.0.0.1:8480"\npublic_origins = ["http://127.0.0.1:8480"]\n${shipped}`,
      );
      const r = await systemctl('start', 'webterminal');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await prop('webterminal', 'ActiveState'), 'active');
      const res = await fetch('http://127.0.0.1:8480/', { signal: AbortSignal.timeout(60_000) });
      assert.equal(res.status, 200);
      assert.match(await res.text(), /<html/i);
      const js = await fetch('http://127.0.0.1:8480/app.js', {
        signal: AbortSignal.timeout(60_000),
      });
      assert.equal(js.status, 200, 'the UI bundle from /usr/share/hostplane/webterminal/ui');
    });

    it('webterminal opens a sandbox session over its API for a bearer-token user', async (t) => {
      if (!packaged('hostplane-webterminal')) {
        t.skip('hostplane-webterminal is not packaged yet');
        return;
      }
      const token = 'e2e-webterminal-token';
      const sha256 = createHash('sha256').update(token).digest('hex');
      const conf = await readFile('/etc/hostplane/webterminal.toml', 'utf8');
      await writeFile(
        '/etc/hostplane/webterminal.toml',
        `${conf}\n[[auth.tokens]]\nuser = "alice"\nsha256 = "${sha256}"\n\n` +
          `[[targets]]\nname = "shell"\ntype = "sandbox"\ncommand = ["/bin/sh", "-i"]\n`,
      );
      const r = await systemctl('restart', 'webterminal');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await prop('webterminal', 'ActiveState'), 'active');
      const base = 'http://127.0.0.1:8480';
      const headers = { authorization: `Bearer ${token}`, origin: base };
      const created = await fetch(`${base}/api/terminals`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ target: 'shell' }),
        signal: AbortSignal.timeout(60_000),
      });
      const session = (await created.json()) as { id?: string };
      assert.equal(created.status, 201, JSON.stringify(session));
      assert.ok(typeof session.id === 'string');
      // answers once the sandbox is ready: an attach URL and a one-time token
      const ready = await fetch(`${base}/api/terminals/${session.id}`, {
        headers,
        signal: AbortSignal.timeout(120_000),
      });
      const body = (await ready.json()) as { attach?: { url?: string; token?: string } };
      assert.equal(ready.status, 200, JSON.stringify(body));
      assert.match(body.attach?.url ?? '', /^ws:\/\/127\.0\.0\.1:8480\//);
      // the shell runs, as the target's user (nobody)
      let out = '';
      const term = await connectExec(body.attach?.url ?? '', {
        headers,
        onOutput: (_ch, d) => {
          out += d.toString();
        },
      });
      term.write('echo uid=$(id -u)-$((6*7))\n');
      await waitFor('the shell to answer', () =>
        Promise.resolve(out.includes('uid=65534-42') ? true : undefined),
      );
      // the session's cgroup, in the subtree systemd delegated to the unit ([cgroup] require)
      const cgroup = `/sys/fs/cgroup/system.slice/webterminal.service/sessions/${session.id}`;
      assert.ok(existsSync(cgroup), `${cgroup} exists while the session lives`);
      assert.equal((await readFile(`${cgroup}/pids.max`, 'utf8')).trim(), '512');
      // systemctl reload: same process, the session goes on
      const pid = await prop('webterminal', 'MainPID');
      const reload = await systemctl('reload', 'webterminal');
      assert.equal(reload.code, 0, reload.stderr);
      await waitFor('active after reload', async () =>
        (await prop('webterminal', 'ActiveState')) === 'active' ? true : undefined,
      );
      assert.equal(await prop('webterminal', 'MainPID'), pid);
      const listed = await fetch(`${base}/api/terminals`, {
        headers,
        signal: AbortSignal.timeout(60_000),
      });
      const list = (await listed.json()) as { terminals?: { id: string }[] };
      assert.deepEqual(
        list.terminals?.map((t) => t.id),
        [session.id],
      );
      const deleted = await fetch(`${base}/api/terminals/${session.id}`, {
        method: 'DELETE',
        headers,
        signal: AbortSignal.timeout(60_000),
      });
      assert.ok(deleted.status === 200 || deleted.status === 204, String(deleted.status));
      assert.equal(existsSync(cgroup), false, 'delete removes the session cgroup');
      term.close();
    });

    it('apt remove stops the services and leaves no hostplane addresses or rules', async () => {
      const running = [];
      for (const u of units()) if ((await prop(u, 'ActiveState')) === 'active') running.push(u);
      assert.ok(running.includes('cu-thor-server'), `running: ${running.join(', ')}`);
      const r = await run([BIN.aptGet, 'remove', '-y', ...packages()]);
      assert.equal(r.code, 0, r.stderr);
      for (const u of running) {
        assert.notEqual(await prop(u, 'ActiveState'), 'active', u);
        assert.equal(existsSync(`/usr/lib/systemd/system/${u}.service`), false);
      }
      const left = await run([BIN.pgrep, '-f', '/usr/lib/hostplane/'], [0, 1]);
      assert.equal(left.stdout, '', 'no hostplane process is left');
      assert.deepEqual(await sidecarTraces(), { addrs: '', rules: '' });
      // remove keeps the configuration and the state
      assert.ok(existsSync(SERVER_CONF));
      assert.ok(existsSync('/var/lib/hostplane/cu-thor-server'));
    });

    it('apt purge removes the configuration and the state', async () => {
      // packages without conffiles are gone entirely after remove; apt purges the rest
      const status = await run(
        [BIN.dpkgQuery, '-W', '-f=${Package} ${db:Status-Abbrev}\n'],
        [0, 1],
      );
      const leftovers = status.stdout
        .split('\n')
        .filter((l) => /^\S+ rc/.test(l))
        .map((l) => l.split(' ')[0] ?? '')
        .filter((p) => packages().includes(p));
      assert.ok(leftovers.includes('hostplane-cu-thor-server'), status.stdout);
      const r = await run([BIN.aptGet, 'purge', '-y', ...leftovers]);
      assert.equal(r.code, 0, r.stderr);
      for (const u of units()) {
        assert.equal(existsSync(`/etc/hostplane/${u}.toml`), false, u);
        assert.equal(existsSync(`/var/lib/hostplane/${u}`), false, u);
        assert.equal(
          existsSync(`/etc/systemd/system/multi-user.target.wants/${u}.service`),
          false,
          u,
        );
      }
      for (const p of packages()) {
        const q = await run([BIN.dpkgQuery, '-W', '-f=${Status}', p], [0, 1]);
        assert.notEqual(q.stdout, 'install ok installed', p);
      }
    });

    it('reinstalling brings the packages back, and cu-thor-server runs jobs again', async () => {
      const r = await aptInstall();
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        await readFile(SERVER_CONF, 'utf8'),
        /^#listen = "0\.0\.0\.0:50051"$/m,
        'the shipped config is back',
      );
      assert.equal((await systemctl('is-enabled', 'cu-thor-server')).stdout.trim(), 'enabled');
      await writeFile(SERVER_CONF, serverConfig(50051));
      assert.equal((await systemctl('start', 'cu-thor-server')).code, 0);
      const start = await cuThor('127.0.0.1:50051', 'start', '--command', 'echo', 'again');
      assert.equal(start.code, 0, start.stderr);
      const out = await cuThor('127.0.0.1:50051', 'output', '--id', start.stdout.trim());
      assert.equal(out.stdout, 'again\n');
    });
  },
);
