// cu-thor-server's lifecycle: build the executor and the mTLS gRPC server, bind, report READY,
// reload certificates on demand, and drain on shutdown (see run()).
import * as grpc from '@grpc/grpc-js';
import { untilAborted } from '../../shared/daemon/index.ts';
import type { Runner } from '../../shared/exec/types.ts';
import type { Logger } from '../../shared/log/index.ts';
import { loadPageCache, type PageCache } from '../../shared/native/pagecache.ts';
import { loadJobExec } from '../../shared/proto/index.ts';
import { listenAddress, toJobLimits, type Config } from './config.ts';
import { watchServerCredentials, type ServerTls } from './credentials.ts';
import { Executor } from './executor.ts';
import { withFastOutStream } from './wire.ts';
import { createJobExecutorService, REQUEST_BOUNDS, SERVER_CHANNEL_OPTIONS } from './service.ts';

export interface ServerDeps {
  config: Config;
  log: Logger;
  runner: Runner;
  /** absolute paths of the namespace helpers the executor runs. */
  nsinit: string;
  unshare: string;
  /** called once the listener is bound and the executor is ready; `status` is for STATUS=. */
  ready(status: string): void;
  /** registers the SIGHUP handler: called with the new, valid config (certificate reload). */
  onReload(fn: (next: Config) => Promise<void>): void;
  /** cgroup2 mount (tests); default /sys/fs/cgroup. */
  cgroupRoot?: string;
  /** the address actually bound (listen may say port 0). */
  onListening?(address: string): void;
  /** the page-cache addon for job output; default: loadPageCache() (null when not built). */
  pageCache?: PageCache | null;
}

function bind(
  server: grpc.Server,
  address: string,
  creds: grpc.ServerCredentials,
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => {
      if (err === null) resolve(port);
      else reject(new Error(`binding gRPC listener ${address}: ${err.message}`, { cause: err }));
    });
  });
}

/** Bounded graceful shutdown of the gRPC server: refuse new calls, then force after `ms`. */
function shutdown(server: grpc.Server, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, ms);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Runs the daemon until `signal` aborts, then drains: no new calls, output streams end
 * (UNAVAILABLE), running jobs are stopped like StopExecution does (SIGTERM, SIGKILL after
 * stop_grace) so their metadata says how they ended, and in-flight calls get a bounded time.
 */
export async function run(deps: ServerDeps, signal: AbortSignal): Promise<void> {
  const { config, log } = deps;
  const pageCache = deps.pageCache === undefined ? loadPageCache() : deps.pageCache;
  if (pageCache === null) {
    log.warn('page-cache addon not found: job output stays in the page cache as it is written');
  }
  const executor = await Executor.create({
    runner: deps.runner,
    log,
    stateDir: config.state_dir,
    cgroup: {
      mode: config.cgroup.require ? 'required' : 'optional',
      ...(deps.cgroupRoot === undefined ? {} : { root: deps.cgroupRoot }),
    },
    limits: {
      defaults: toJobLimits(config.limits.default),
      max: toJobLimits(config.limits.max),
      total: toJobLimits(config.limits.total),
    },
    maxConcurrent: config.max_concurrent,
    stopGraceMs: config.stop_grace,
    maxOutputBytes: config.max_output_bytes,
    maxArgsBytes: REQUEST_BOUNDS.totalBytes,
    nsinit: deps.nsinit,
    unshare: deps.unshare,
    pageCache,
  });
  const service = createJobExecutorService({
    executor,
    log: log.child({ component: 'grpc' }),
    maxStreams: config.max_output_streams,
    maxStreamsPerOwner: config.max_output_streams_per_client,
  });
  const server = new grpc.Server(SERVER_CHANNEL_OPTIONS);
  server.addService(
    withFastOutStream(loadJobExec().hostplane.jobexec.v1.JobExecutor.service),
    service.handlers,
  );
  let closed = false;
  let tls: ServerTls | undefined;
  try {
    // replaced certificate files are taken when they change on disk, and on SIGHUP
    tls = await watchServerCredentials(config.tls, log);
    const serverTls = tls;
    // only the TLS files take effect on reload; other keys need a restart
    deps.onReload(async (next) => {
      const changed = await serverTls.reload(next.tls);
      // changed is false when the files are as before (or the file watcher took them already)
      log.info({ files: next.tls, changed }, 'tls certificates reloaded');
    });
    const port = await bind(server, listenAddress(config.listen), serverTls.credentials);
    const address = listenAddress({ host: config.listen.host, port });
    log.info({ address, cgroups: executor.cgroupsEnabled }, 'listening');
    deps.onListening?.(address);
    const isolation = executor.cgroupsEnabled
      ? 'cgroup v2 limits and namespaces'
      : `namespaces only, NO resource limits (cgroup v2 not usable: ${executor.cgroupProblem ?? 'unknown'})`;
    deps.ready(`listening on ${address}; jobs run with ${isolation}`);

    await untilAborted(signal);
    log.info('draining: refusing new calls, ending output streams, stopping jobs');
    const drained = shutdown(server, config.stop_grace + 5_000);
    service.close();
    await executor.close({ stopJobs: true });
    await drained;
    closed = true;
  } finally {
    tls?.close();
    if (!closed) {
      service.close();
      server.forceShutdown();
      await executor.close();
    }
  }
}
