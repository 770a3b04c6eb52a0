/**
 * Readiness: how the daemon tells the launcher it is up (or why it is not), and how it notices an entry
 * that listens on a socket without changing the entry.
 *
 * The ready socket (fd 3, see stage.ts) carries lines: `PID n` (written by the session leader that forked the
 * daemon), `LOCKING` (the daemon waits for the pid file's lock, which the launcher then lets go), then
 * `READY`, or `ERROR {"code", "message"}`. End of file without `READY` means failure, never success.
 *
 * @module
 */
import { readdirSync, readlinkSync } from "node:fs";
import process from "node:process";
import { type Libc, libc as systemLibc } from "../ffi/mod.ts";
import { type DaemonErrorCode, DaemonError } from "./errors.ts";
import { lifecycle } from "./lifecycle.ts";

const encoder = new TextEncoder();

/** The daemon's end of the ready socket: reports once, then closes. */
export class ReadyReporter {
  private open = true;
  constructor(private readonly fd: number, private readonly libc: Libc = systemLibc) {}

  /** Reports success. */
  ready(): void {
    this.send("READY\n");
  }

  /** Reports a start-up failure with the text the launcher prints. */
  fail(code: DaemonErrorCode, message: string): void {
    this.send(`ERROR ${JSON.stringify({ code, message })}\n`);
  }

  /** Sends a line without closing; `false` when the launcher has gone (its end is closed). */
  tell(line: string): boolean {
    try {
      this.libc.write(this.fd, encoder.encode(line + "\n"));
      return true;
    } catch {
      return false;
    }
  }

  /** Whether a report is still owed. */
  get pending(): boolean {
    return this.open;
  }

  private send(line: string): void {
    if (!this.open) return;
    this.open = false;
    try {
      this.libc.write(this.fd, encoder.encode(line));
      this.libc.close(this.fd);
    } catch {
      // The launcher is gone (killed, or timed out): nobody to tell.
    }
  }
}

/** What the launcher learned from the ready socket. */
export interface ReadyResult {
  /** The daemon's pid, when the session leader reported it. */
  pid?: number;
  /** `undefined` when the daemon reported `READY`. */
  error?: DaemonError;
  /** Whether the error came from the daemon itself (an `ERROR` line), so it is already in its log. */
  reported?: boolean;
}

/** What {@linkcode waitForReady} also listens to. */
export interface ReadyWatch {
  /** Called on `LOCKING`: the daemon waits for the pid file's lock. */
  onLocking?: () => void;
  /** The signal that stopped the waiting process, if one did. */
  stoppedBy?: () => string | undefined;
}

/**
 * Reads the ready socket until `READY`, `ERROR`, end of file, `timeoutMs`, or a stop signal. Waits in short
 * slices so the caller's signal listeners run. What is already readable is read even past the deadline,
 * so the daemon's `PID n` line is never missed.
 *
 * @example
 * ```ts ignore
 * const { pid, error } = await waitForReady(readEnd, 60_000, "");
 * ```
 */
export async function waitForReady(fd: number, timeoutMs: number, logHint: string, libc: Libc = systemLibc, watch: ReadyWatch = {}): Promise<ReadyResult> {
  const deadline = Date.now() + timeoutMs;
  const decoder = new TextDecoder();
  let buffered = "";
  let pid: number | undefined;
  for (;;) {
    const left = deadline - Date.now();
    if (!libc.waitReadable(fd, Math.max(0, Math.min(left, 20)))) {
      const signal = watch.stoppedBy?.();
      if (signal) return { pid, error: new DaemonError("START_FAILED", `Cannot start: stopped during start-up (${signal})${logHint}`, { pid }) };
      if (left <= 0) {
        const error = new DaemonError("START_FAILED", `Cannot start: the entry was not ready within ${timeoutMs / 1000} s${logHint}: raise --start-timeout, or call ready() if it never listens`, { pid });
        return { pid, error };
      }
      await new Promise((r) => setTimeout(r, 0)); // lets a SIGTERM or SIGINT listener run
      continue;
    }
    const chunk = libc.read(fd, 65536);
    if (chunk.length === 0) {
      const error = new DaemonError("START_FAILED", `Cannot start: the daemon exited during start-up without a report${logHint}`, { pid });
      return { pid, error };
    }
    buffered += decoder.decode(chunk, { stream: true });
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.startsWith("PID ")) pid = Number(line.slice(4));
      else if (line === "LOCKING") watch.onLocking?.();
      else if (line === "READY") {
        // The daemon closes its end right after: wait for that, so no socket of ours is left in it.
        while (libc.waitReadable(fd, 1000) && libc.read(fd, 512).length > 0);
        return { pid };
      }
      else if (line.startsWith("ERROR ")) {
        const { code, message } = JSON.parse(line.slice(6)) as { code: DaemonErrorCode; message: string };
        return { pid, error: new DaemonError(code, message, { pid }), reported: true };
      }
    }
  }
}

/** Whether this process has a listening socket (TCP, UDP-less, or Unix): the kernel already queues
 * connections on it, so clients can connect. */
export function hasListeningSocket(libc: Libc = systemLibc): boolean {
  for (const name of readdirSync("/proc/self/fd")) {
    const fd = Number(name);
    if (fd < 3) continue;
    try {
      if (readlinkSync(`/proc/self/fd/${name}`).startsWith("socket:") && libc.isListening(fd)) return true;
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
  const timers: ReturnType<typeof setTimeout>[] = [];
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    stop();
    onReady();
  };
  const stop = () => timers.forEach((t) => clearTimeout(t));
  if (life.isReady) queueMicrotask(finish);
  else life.ready.push(finish);
  if (mode === "auto") {
    const check = () => hasListeningSocket() && finish();
    const poll = setInterval(check, POLL_MS);
    (poll as { unref?: () => void }).unref?.();
    timers.push(poll);
    evaluated.then(() => {
      check();
      const settle = setTimeout(finish, SETTLE_MS);
      (settle as { unref?: () => void }).unref?.();
      timers.push(settle);
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
  process.once("beforeExit", () => {
    if (!isReady()) fail(NOT_A_SERVER);
  });
}
