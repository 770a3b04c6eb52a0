/**
 * The entry's readiness, seen without changing the entry: it listens on a socket (the kernel already queues
 * connections), calls `ready()`, or has run a while without failing; or it is no server at all.
 *
 * @module
 */
import { host, type Timer } from "../ffi/_host.ts";
import { type Libc, libc as systemLibc } from "../ffi/mod.ts";
import { lifecycle } from "./lifecycle.ts";

/** Whether this process has a listening socket (TCP, UDP-less, or Unix): the kernel already queues
 * connections on it, so clients can connect. */
export function hasListeningSocket(libc: Libc = systemLibc): boolean {
  for (const name of host.readDir("/proc/self/fd")) {
    const fd = Number(name);
    if (fd < 3) continue;
    try {
      if (host.readLink(`/proc/self/fd/${name}`).startsWith("socket:") && libc.isListening(fd)) return true;
    } catch {
      // Closed while we looked.
    }
  }
  return false;
}

/** How long an entry that never listens must run without failing to count as started (PM2's min_uptime). */
export const SETTLE_MS = 1000;
const POLL_MS = 4;

/**
 * Calls `onReady` once the entry is ready: when it calls `ready()`, or (mode `auto`) when the process first
 * listens on a socket, or when `evaluated` has resolved and the entry has run {@linkcode SETTLE_MS} since.
 * Returns a function that stops watching. Its timers never keep the process alive.
 */
export function watchReadiness(mode: "auto" | "manual", evaluated: Promise<unknown>, onReady: () => void): () => void {
  const life = lifecycle();
  const timers: Timer[] = [];
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    stop();
    onReady();
  };
  const stop = () => timers.forEach((t) => t.cancel());
  if (life.isReady) queueMicrotask(finish);
  else life.ready.push(finish);
  if (mode === "auto") {
    const check = () => hasListeningSocket() && finish();
    timers.push(host.timer(POLL_MS, check, { repeat: true, unref: true }));
    evaluated.then(() => {
      check();
      timers.push(host.timer(SETTLE_MS, finish, { unref: true }));
    }, () => {});
  }
  return stop;
}

/** Why an entry that left nothing to run before it was ready is no server, and the three ways to be one. */
export const NOT_A_SERVER = "the entry finished loading with nothing left to run and never became ready: " +
  "listen on a port, export default { fetch }, or call ready() and keep running";

/**
 * Calls `fail` with {@linkcode NOT_A_SERVER} when the event loop empties ('beforeExit', which Bun and Deno
 * emit too) before `isReady()`. An explicit `process.exit()` is the entry's own choice and is not caught.
 */
export function failWhenIdle(isReady: () => boolean, fail: (message: string) => void): void {
  host.onceIdle(() => {
    if (!isReady()) fail(NOT_A_SERVER);
  });
}
