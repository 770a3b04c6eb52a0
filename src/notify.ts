/**
 * systemd's readiness protocol (sd_notify): one datagram of `KEY=VALUE` lines to `$NOTIFY_SOCKET`.
 * With `Type=notify` the entry runs in the foreground and systemd learns when it is ready, reloading and
 * stopping, and gets watchdog keep-alives when `WatchdogSec=` is set.
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { type Libc, libc as systemLibc } from "../ffi/mod.ts";
import { runnerLog } from "./log/lines.ts";

const encoder = new TextEncoder();

/** A notifier bound to the socket systemd named, or one that does nothing outside systemd. */
export interface Notifier {
  /** Whether systemd is listening. */
  readonly active: boolean;
  /** The environment a process taking over as the service's main process (an upgraded master) needs. */
  readonly handover: Record<string, string>;
  /** The watchdog keep-alive is sent only while this says so (a master: while its workers' heartbeats come). */
  healthy?: () => boolean;
  /** Sends `state` (e.g. `"READY=1"`); failures are logged, never thrown. */
  notify(state: string): void;
}

/**
 * Reads and removes `NOTIFY_SOCKET` (so neither the entry nor workers notify in our name) and starts the
 * watchdog keep-alive when systemd asked for one.
 *
 * @example
 * ```ts
 * import { systemdNotifier } from "./notify.ts";
 * const systemd = systemdNotifier({}); // no NOTIFY_SOCKET: not under systemd
 * systemd.notify(`READY=1\nMAINPID=${process.pid}`); // does nothing here
 * console.log(systemd.active); // false
 * ```
 */
export function systemdNotifier(
  env: Record<string, string | undefined> = host.environ,
  libc: Libc = systemLibc,
): Notifier {
  const socket = env.NOTIFY_SOCKET;
  const watchdogUsec = Number(env.WATCHDOG_USEC);
  const watchdogPid = Number(env.WATCHDOG_PID || host.pid());
  for (const key of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]) delete env[key];
  if (!socket) return { active: false, handover: {}, notify() {} };
  const notifier: Notifier = {
    active: true,
    handover: { NOTIFY_SOCKET: socket, ...(watchdogUsec > 0 ? { WATCHDOG_USEC: String(watchdogUsec) } : {}) },
    notify(state) {
      try {
        libc.sendDatagram(socket, encoder.encode(state));
      } catch (err) {
        runnerLog(`cannot notify systemd at ${socket}: ${(err as Error).message}`);
      }
    },
  };
  if (watchdogUsec > 0 && watchdogPid === host.pid()) {
    host.timer(watchdogUsec / 2000, () => (notifier.healthy?.() ?? true) && notifier.notify("WATCHDOG=1"), {
      repeat: true,
      unref: true,
    });
  }
  return notifier;
}
