// The test VM (docs/vm.md): Debian trixie under qemu/TCG with systemd as PID 1 and real cgroup v2.
// `runInVm` boots a throwaway overlay of the cached image, runs one command as root with the
// checkout at /mnt/host, and returns its output and exit status.
import { mkdtemp, open, readFile, rm, writeFile, mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../shared/log/index.ts';
import type { Runner } from '../../shared/exec/types.ts';

export const QEMU = '/usr/bin/qemu-system-x86_64';
export const QEMU_IMG = '/usr/bin/qemu-img';
export const BASH = '/bin/bash';
/** Binaries the VM harness runs; pass them to `createRunner({ allow })`. */
export const VM_BINARIES = [QEMU, QEMU_IMG, BASH] as const;

const BUILD_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'build-image.sh');

/** A built image: the files build-image.sh leaves in its cache directory. */
export interface VmImage {
  dir: string;
  vmlinux: string;
  initramfs: string;
  image: string;
}

export interface VmDeps {
  runner: Runner;
  log: Logger;
}

/**
 * Builds the image if the cache has none for the current inputs (several minutes the first
 * time), else returns the cached one; build progress goes to `progress` (default stderr).
 */
export async function ensureImage(
  deps: VmDeps,
  opts: { progress?: (chunk: string) => void; timeoutMs?: number } = {},
): Promise<VmImage> {
  const progress = opts.progress ?? ((s: string) => process.stderr.write(s));
  const t0 = Date.now();
  const child = deps.runner.spawn([BASH, BUILD_SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', progress);
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20 * 60_000);
  const { code, signal } = await child.exited.finally(() => {
    clearTimeout(timer);
  });
  if (code !== 0) {
    throw new Error(
      `building the VM image with ${BUILD_SCRIPT}: exited ${code ?? signal} (output above)`,
    );
  }
  const dir = stdout.trim().split('\n').pop() ?? '';
  const img: VmImage = {
    dir,
    vmlinux: join(dir, 'vmlinux'),
    initramfs: join(dir, 'initramfs.img'),
    image: join(dir, 'image.ext4'),
  };
  for (const f of [img.vmlinux, img.initramfs, img.image]) {
    await stat(f).catch((err: unknown) => {
      throw new Error(`building the VM image: ${f} missing after the build`, { cause: err });
    });
  }
  deps.log.info({ dir, ms: Date.now() - t0 }, 'vm image ready');
  return img;
}

export interface RunInVmOptions {
  /** host directory mounted at /mnt/host (the working directory of the command). */
  share: string;
  /** argv run as root, or a bash script. */
  command: readonly string[] | string;
  /** whole run: boot, command, poweroff. TCG is slow: minutes, not seconds. */
  timeoutMs: number;
  image: VmImage;
  /** environment of the command inside the VM. */
  env?: Readonly<Record<string, string>>;
  memoryMb?: number;
  cpus?: number;
  /** receives the command's output while it runs. */
  onOutput?: (chunk: string) => void;
  signal?: AbortSignal;
  /** keep the run directory (overlay, console log) even when the command succeeded. */
  keep?: boolean;
}

export interface VmRunResult {
  /** the command's exit status; null when it never reported one (crash, timeout). */
  code: number | null;
  output: string;
  /** guest uptime in seconds when the command started. */
  bootSeconds: number | null;
  wallMs: number;
  /** the serial console log (kernel and systemd messages), for debugging. */
  consoleLog: string;
  /** the run directory, kept when the run failed or `keep` was set. */
  runDir: string | null;
}

/** POSIX shell quoting of one word. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The script the VM runs: the environment, then the command. */
export function renderRunScript(
  command: readonly string[] | string,
  env: Readonly<Record<string, string>> = {},
): string {
  const lines = ['#!/bin/bash', '# written by scripts/vm/run.ts'];
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new RangeError(`invalid env name ${k}`);
    lines.push(`export ${k}=${shellQuote(v)}`);
  }
  lines.push(typeof command === 'string' ? command : `exec ${command.map(shellQuote).join(' ')}`);
  return lines.join('\n') + '\n';
}

/** The qemu command line of one run (see VM-NOTES.md for why each option is there). */
export function qemuArgv(o: {
  image: VmImage;
  overlay: string;
  share: string;
  ctl: string;
  consoleLog: string;
  memoryMb: number;
  cpus: number;
}): string[] {
  return [
    QEMU,
    ...['-accel', 'tcg,thread=multi', '-cpu', 'max', '-m', String(o.memoryMb)],
    ...['-smp', String(o.cpus), '-kernel', o.image.vmlinux, '-initrd', o.image.initramfs],
    ...['-append', 'console=ttyS0 quiet panic=-1 rw'],
    ...['-drive', `file=${o.overlay},if=virtio,format=qcow2`],
    ...['-virtfs', `local,path=${o.share},mount_tag=host0,security_model=none,id=host0`],
    ...['-virtfs', `local,path=${o.ctl},mount_tag=ctl,security_model=none,id=ctl`],
    ...['-nic', 'none', '-display', 'none', '-no-reboot', '-monitor', 'none'],
    ...['-serial', `file:${o.consoleLog}`],
  ];
}

/** Reads what was appended to a file since the last call. */
function tailer(path: string, onChunk: (s: string) => void): () => Promise<void> {
  let offset = 0;
  const decoder = new TextDecoder();
  return async () => {
    let fh;
    try {
      fh = await open(path, 'r');
    } catch {
      return; // not written yet
    }
    try {
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        onChunk(decoder.decode(buf.subarray(0, bytesRead), { stream: true }));
      }
    } finally {
      await fh.close();
    }
  };
}

/** Boots the VM on a fresh overlay, runs the command as root, and powers off. */
export async function runInVm(deps: VmDeps, opts: RunInVmOptions): Promise<VmRunResult> {
  const t0 = Date.now();
  const share = resolve(opts.share);
  const runDir = await mkdtemp(join(tmpdir(), 'hostplane-vm-'));
  const ctl = join(runDir, 'ctl');
  await mkdir(ctl);
  const overlay = join(runDir, 'overlay.qcow2');
  const consoleLog = join(runDir, 'console.log');
  await writeFile(join(ctl, 'run.sh'), renderRunScript(opts.command, opts.env), { mode: 0o755 });
  await deps.runner.run(
    [QEMU_IMG, 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', opts.image.image, overlay],
    { timeoutMs: 60_000 },
  );

  let output = '';
  const poll = tailer(join(ctl, 'output.log'), (s) => {
    output += s;
    opts.onOutput?.(s);
  });
  let polling = Promise.resolve();
  const interval = setInterval(() => {
    polling = polling.then(poll).catch(() => undefined);
  }, 500);
  const argv = qemuArgv({
    image: opts.image,
    overlay,
    share,
    ctl,
    consoleLog,
    memoryMb: opts.memoryMb ?? 2048,
    cpus: opts.cpus ?? 2,
  });
  let failure: string | null = null;
  try {
    await deps.runner.run(argv, {
      timeoutMs: opts.timeoutMs,
      okCodes: [0],
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    });
  } catch (err) {
    failure = (err as Error).message;
  } finally {
    clearInterval(interval);
    await polling;
    await poll();
  }

  const status = await readFile(join(ctl, 'status'), 'utf8').catch(() => null);
  const code = status === null ? null : Number(status.trim());
  const boot = await readFile(join(ctl, 'boot'), 'utf8').catch(() => null);
  const bootSeconds = boot === null ? null : Number(/booted ([\d.]+)/.exec(boot)?.[1] ?? NaN);
  const consoleText = await readFile(consoleLog, 'utf8').catch(() => '');
  const wallMs = Date.now() - t0;
  const keep = opts.keep === true || code !== 0;
  if (!keep) await rm(runDir, { recursive: true, force: true });
  deps.log.info({ code, bootSeconds, wallMs, failure, runDir: keep ? runDir : null }, 'vm run');
  if (failure !== null && code === null) {
    output += `\n[vm] qemu failed before the command reported a status: ${failure}\n`;
  }
  return {
    code,
    output,
    bootSeconds,
    wallMs,
    consoleLog: consoleText,
    runDir: keep ? runDir : null,
  };
}
