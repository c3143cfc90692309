// The sidecar's loop: sync now, then again every sync_interval and soon after an address
// disappears (`ip monitor address`), until stopped; cleanup on stop when configured.
import { createInterface } from 'node:readline';
import type { Runner, Spawned } from '../../shared/exec/types.ts';
import type { Logger } from '../../shared/log/index.ts';
import type { NetTools } from '../../shared/net/index.ts';
import type { SidecarConfig } from './config.ts';
import { createSidecarMetrics, serveMetrics, type SidecarMetrics } from './metrics.ts';
import { desiredState } from './plan.ts';
import { Sidecar, type SyncReport } from './sidecar.ts';

/** What runSidecar needs; main.ts builds the real ones from shared/daemon's ctx. */
export interface SidecarRunDeps {
  config: SidecarConfig;
  log: Logger;
  /** every `ip`/`iptables` call goes through it (tests prefix it with `ip netns exec`) */
  runner: Runner;
  tools: NetTools;
  /** aborted on SIGTERM/SIGINT */
  signal: AbortSignal;
  ready(status: string): void;
  status(text: string): void;
  /** `--cleanup`: remove what an earlier run added, then return */
  cleanupOnly?: boolean;
  /** called with the metrics listener's port once it listens (tests use port 0) */
  onMetricsListening?: (port: number) => void;
}

/**
 * The sidecar from config to exit: `--cleanup` one-shot, `daemon = false` one sync, or the loop
 * (with the optional metrics listener) until `signal` aborts. Rejects with the reason on failure.
 */
export async function runSidecar(d: SidecarRunDeps): Promise<void> {
  const metrics = createSidecarMetrics();
  const sidecar = new Sidecar(desiredState(d.config), {
    net: { runner: d.runner, tools: d.tools, log: d.log },
    log: d.log,
    metrics,
    stateFile: d.config.state_file,
  });
  if (d.cleanupOnly === true) {
    const removed = await sidecar.cleanup();
    d.log.info({ removed }, 'cleanup done');
    return;
  }
  if (!d.config.daemon) {
    await syncOnce({ sidecar, log: d.log });
    return;
  }
  let synced = false;
  const server =
    d.config.metrics_listen === undefined
      ? undefined
      : await serveMetrics(metrics, d.config.metrics_listen, () => synced);
  if (server !== undefined) d.onMetricsListening?.(server.port);
  try {
    await runLoop(d.config, {
      sidecar,
      runner: d.runner,
      ipBin: d.tools.ip,
      log: d.log,
      metrics,
      signal: d.signal,
      ready: (status) => {
        synced = true;
        d.ready(status);
      },
      status: (text) => {
        d.status(text);
      },
    });
  } finally {
    await server?.close();
  }
}

/** What the loop needs from its host process (shared/daemon's ctx provides these). */
export interface LoopDeps {
  sidecar: Sidecar;
  /** runs `ip monitor address` */
  runner: Runner;
  ipBin: string;
  log: Logger;
  metrics: SidecarMetrics;
  /** aborted on SIGTERM/SIGINT */
  signal: AbortSignal;
  /** called once, after the first successful sync */
  ready(status: string): void;
  status(text: string): void;
}

/** How long after an address event the sync runs (events come in bursts). */
export const EVENT_DEBOUNCE_MS = 50;
/** First retry delay after a failed sync; it doubles up to sync_interval. */
export const RETRY_MIN_MS = 500;

/** One sync for `daemon = false`; rejects with the reason when it fails. */
export async function syncOnce(d: Pick<LoopDeps, 'sidecar' | 'log'>): Promise<SyncReport> {
  const report = await d.sidecar.sync();
  d.log.info({ changes: report.changes, ms: report.ms }, 'sync done');
  return report;
}

/** Runs until `signal` aborts; resolves after cleanup (when `cfg.cleanup`). */
export async function runLoop(
  cfg: Pick<SidecarConfig, 'sync_interval' | 'cleanup'>,
  d: LoopDeps,
): Promise<void> {
  const wake = new Wakeup();
  const onAbort = (): void => {
    wake.fire();
  };
  d.signal.addEventListener('abort', onAbort, { once: true });
  const watcher = watchAddresses(d, () => {
    wake.fire(EVENT_DEBOUNCE_MS);
  });
  let ready = false;
  let retryMs = RETRY_MIN_MS;
  try {
    while (!d.signal.aborted) {
      let next = cfg.sync_interval;
      try {
        const report = await d.sidecar.sync();
        const at = new Date().toISOString();
        if (report.changes.length > 0 || !ready) {
          d.log.info({ changes: report.changes, ms: report.ms }, 'sync done');
        } else {
          d.log.debug({ ms: report.ms }, 'sync done, no drift');
        }
        const text = `last sync ${at}: ${report.changes.length === 0 ? 'no drift' : report.changes.join(', ')}`;
        if (!ready) {
          ready = true;
          d.ready(text);
        } else {
          d.status(text);
        }
        retryMs = RETRY_MIN_MS;
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        d.log.error({ err: msg }, 'sync failed');
        d.status(`last sync ${new Date().toISOString()} failed: ${msg}`);
        next = Math.min(retryMs, cfg.sync_interval);
        retryMs = Math.min(retryMs * 2, cfg.sync_interval);
      }
      await wake.wait(next);
    }
  } finally {
    d.signal.removeEventListener('abort', onAbort);
    wake.close();
    await watcher.stop();
  }
  if (cfg.cleanup) {
    const removed = await d.sidecar.cleanup();
    d.log.info({ removed }, 'cleanup done');
  }
}

/** A wait for the next sync: a timeout, or an earlier `fire()` (optionally debounced). */
class Wakeup {
  #pending = false;
  #resolve: (() => void) | undefined;
  #debounce: NodeJS.Timeout | undefined;

  fire(afterMs = 0): void {
    if (afterMs > 0) {
      // coalesce a burst: the first event arms the timer, the rest ride along
      if (this.#debounce === undefined) {
        this.#debounce = setTimeout(() => {
          this.#debounce = undefined;
          this.fire();
        }, afterMs);
      }
      return;
    }
    this.#pending = true;
    this.#resolve?.();
  }

  async wait(ms: number): Promise<void> {
    if (!this.#pending) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, ms);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.#resolve = done;
      });
      this.#resolve = undefined;
    }
    this.#pending = false;
  }

  close(): void {
    clearTimeout(this.#debounce);
  }
}

/** Keeps `ip monitor address` running; `onDelete` for every deleted address it reports. */
function watchAddresses(d: LoopDeps, onDelete: () => void): { stop(): Promise<void> } {
  let child: Spawned | undefined;
  let stopped = false;
  let restartTimer: NodeJS.Timeout | undefined;
  const start = (): void => {
    if (stopped) return;
    try {
      child = d.runner.spawn([d.ipBin, 'monitor', 'address'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      d.metrics.errors.inc({ kind: 'watch' });
      d.log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'cannot watch addresses',
      );
      restartTimer = setTimeout(start, 5000);
      return;
    }
    const c = child;
    c.stderr?.resume();
    createInterface({ input: c.stdout! }).on('line', (line) => {
      if (line.startsWith('Deleted')) onDelete();
    });
    void c.exited.then(({ code, signal }) => {
      if (stopped) return;
      // the periodic sync still runs; the watch comes back after a pause
      d.metrics.errors.inc({ kind: 'watch' });
      d.log.warn({ code, signal }, 'ip monitor address ended; restarting it in 1s');
      restartTimer = setTimeout(start, 1000);
    });
  };
  start();
  return {
    async stop() {
      stopped = true;
      clearTimeout(restartTimer);
      if (child !== undefined) {
        child.kill('SIGTERM');
        await child.exited;
      }
    },
  };
}
