// sd_notify(3) for hostplane daemons: READY/STATUS/RELOADING/STOPPING and watchdog pings. A no-op
// when the service manager gave no NOTIFY_SOCKET (run by hand, in tests, under another manager).
import { createRequire } from 'node:module';
import type { Logger } from '../log/index.ts';

/** What a daemon tells the service manager. Every method is safe to call without systemd. */
export interface Notifier {
  /** true when NOTIFY_SOCKET is set, i.e. messages go somewhere */
  readonly enabled: boolean;
  /** READY=1 (with STATUS= when given): call once listeners are bound and the first sync is done. */
  ready(status?: string): void;
  /** STATUS=text, shown by `systemctl status`. */
  status(text: string): void;
  /** RELOADING=1 with MONOTONIC_USEC (Type=notify-reload needs it); follow with ready(). */
  reloading(): void;
  /** STOPPING=1: the daemon has begun its graceful stop. */
  stopping(): void;
  /** Pings WATCHDOG=1 at half of WATCHDOG_USEC, if the manager asked for a watchdog. */
  startWatchdog(): void;
  /** Stops the watchdog timer. */
  stop(): void;
}

/** The datagram send itself (sd_notify(0, state)); the `sd-notify` addon in production. */
export interface NotifySender {
  send(state: string): void;
}

export interface NotifierOptions {
  log: Logger;
  /** environment to read NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID from; default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** the sender; default the `sd-notify` native addon, loaded only when NOTIFY_SOCKET is set */
  sd?: NotifySender;
  /** CLOCK_MONOTONIC in microseconds; default from process.hrtime (libuv reads CLOCK_MONOTONIC) */
  monotonicUsec?: () => bigint;
  /** this process's pid, compared with WATCHDOG_PID; default process.pid */
  pid?: number;
}

/** CLOCK_MONOTONIC now, in microseconds, as systemd compares MONOTONIC_USEC. */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

interface SdNotifyAddon {
  sendState(state: string): void;
}

/** The real sender, over the `sd-notify` native addon (Node has no unix datagram sockets). */
export function addonSender(): NotifySender {
  const require = createRequire(import.meta.url);
  const addon = require('sd-notify') as SdNotifyAddon;
  return {
    send: (state) => {
      addon.sendState(state);
    },
  };
}

/** A Notifier for this process; see the module comment for when it is a no-op. */
export function createNotifier(opts: NotifierOptions): Notifier {
  const env = opts.env ?? process.env;
  const log = opts.log.child({ component: 'systemd' });
  const socket = env['NOTIFY_SOCKET'];
  const enabled = socket !== undefined && socket !== '';
  const clock = opts.monotonicUsec ?? monotonicUsec;
  let sender: NotifySender | undefined = enabled ? opts.sd : undefined;
  let timer: NodeJS.Timeout | undefined;

  const send = (state: string): void => {
    if (!enabled) return;
    try {
      sender ??= addonSender();
      sender.send(state);
      log.debug({ state }, 'sd_notify');
    } catch (err) {
      // a manager that cannot be told is no reason to stop serving
      log.warn({ err, state }, 'sending sd_notify state failed');
    }
  };

  return {
    enabled,
    ready(status) {
      send(status === undefined ? 'READY=1' : `READY=1\nSTATUS=${oneLine(status)}`);
    },
    status(text) {
      send(`STATUS=${oneLine(text)}`);
    },
    reloading() {
      send(`RELOADING=1\nMONOTONIC_USEC=${clock().toString()}`);
    },
    stopping() {
      send('STOPPING=1');
    },
    startWatchdog() {
      if (!enabled || timer !== undefined) return;
      const usec = Number(env['WATCHDOG_USEC'] ?? '');
      if (!Number.isInteger(usec) || usec <= 0) return;
      const wpid = env['WATCHDOG_PID'];
      if (wpid !== undefined && wpid !== '' && Number(wpid) !== (opts.pid ?? process.pid)) return;
      const intervalMs = Math.max(1, Math.floor(usec / 2000));
      send('WATCHDOG=1');
      timer = setInterval(() => {
        send('WATCHDOG=1');
      }, intervalMs);
      timer.unref();
      log.info({ intervalMs }, 'watchdog pings started');
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
  };
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}
