/**
 * The channel's protocol, both ends, in one place. A re-executed process reports on fd 3 (see stage.ts)
 * one line at a time: `PID n` (from the /bin/sh or detach stage that started the daemon), `LOCKING` (the
 * daemon is about to take the pid file over), `LOCKED` (it holds it: the launcher lets go of its own lock), then
 * `READY` or `ERROR {"code", "message"}`;
 * a worker also sends `HB` (heartbeat), and `DRAINING` once a graceful stop has closed its listeners. End of
 * file without `READY` means failure, never success.
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { type Libc, libc as systemLibc } from "../ffi/mod.ts";
import { DaemonError, type DaemonErrorCode } from "./errors.ts";

/** One line of the protocol. */
export type Report =
  | { kind: "PID"; pid: number }
  | { kind: "LOCKING" | "LOCKED" | "READY" | "HB" | "DRAINING" }
  | { kind: "ERROR"; code: DaemonErrorCode; message: string };

/**
 * The line for `report`, newline included.
 *
 * @example
 * ```ts
 * import { encode } from "./channel.ts";
 * console.log(encode({ kind: "ERROR", code: "START_FAILED", message: "boom" }));
 * // ERROR {"code":"START_FAILED","message":"boom"}
 * ```
 */
export function encode(report: Report): string {
  if (report.kind === "PID") return `PID ${report.pid}\n`;
  if (report.kind === "ERROR") return `ERROR ${JSON.stringify({ code: report.code, message: report.message })}\n`;
  return `${report.kind}\n`;
}

/**
 * The report a line (without its newline) carries, or `undefined` for a line that is none.
 *
 * @example
 * ```ts
 * import { decode } from "./channel.ts";
 * console.log(decode("PID 42")); // { kind: "PID", pid: 42 }
 * ```
 */
export function decode(line: string): Report | undefined {
  if (line.startsWith("PID ")) return { kind: "PID", pid: Number(line.slice(4)) };
  if (line === "LOCKING" || line === "LOCKED" || line === "READY" || line === "HB" || line === "DRAINING") {
    return { kind: line };
  }
  if (!line.startsWith("ERROR ")) return undefined;
  try {
    const { code, message } = JSON.parse(line.slice(6)) as { code: DaemonErrorCode; message: string };
    return { kind: "ERROR", code, message };
  } catch {
    return undefined;
  }
}

/** Splits what a socket delivers into reports, keeping a partial line for the next chunk. */
export class ReportReader {
  private buffered = "";
  private readonly decoder = new TextDecoder();

  /** The reports completed by `chunk`. */
  push(chunk: Uint8Array): Report[] {
    this.buffered += this.decoder.decode(chunk, { stream: true });
    const lines = this.buffered.split("\n");
    this.buffered = lines.pop()!;
    return lines.map(decode).filter((r) => r !== undefined);
  }
}

const encoder = new TextEncoder();

/** The daemon's end of the channel: reports once, then closes. */
export class ReadyReporter {
  private open = true;
  constructor(private readonly fd: number, private readonly libc: Libc = systemLibc) {}

  /** Reports success. */
  ready(): void {
    this.send(encode({ kind: "READY" }));
  }

  /** Reports a start-up failure with the text the launcher prints. */
  fail(code: DaemonErrorCode, message: string): void {
    this.send(encode({ kind: "ERROR", code, message }));
  }

  /** Sends a report without closing; `false` when the launcher has gone (its end is closed). */
  tell(report: Report): boolean {
    try {
      this.libc.write(this.fd, encoder.encode(encode(report)));
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

/** What the launcher learned from the channel. */
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
  /** Called on `LOCKED`: the daemon holds the pid file now. */
  onLocked?: () => void;
  /** The signal that stopped the waiting process, if one did. */
  stoppedBy?: () => string | undefined;
}

/**
 * Reads the channel until `READY`, `ERROR`, end of file, `timeoutMs`, or a stop signal. Waits in short
 * slices so the caller's signal listeners run. What is already readable is read even past the deadline,
 * so the daemon's `PID n` line is never missed.
 *
 * @example
 * ```ts
 * import { waitForReady } from "./channel.ts";
 * import { libc } from "../ffi/mod.ts";
 * const [mine, theirs] = libc.socketPair();
 * libc.write(theirs, new TextEncoder().encode("PID 42\nREADY\n"));
 * libc.close(theirs);
 * const { pid, error } = await waitForReady(mine, 1000, "");
 * console.log(pid, error); // 42 undefined
 * ```
 */
export async function waitForReady(
  fd: number,
  timeoutMs: number,
  logHint: string,
  libc: Libc = systemLibc,
  watch: ReadyWatch = {},
): Promise<ReadyResult> {
  const deadline = Date.now() + timeoutMs;
  const reader = new ReportReader();
  let pid: number | undefined;
  // A stop (SIGTERM, SIGINT) of the waiting process cancels the start whatever the daemon reports meanwhile.
  const stopped = () => {
    const signal = watch.stoppedBy?.();
    return signal
      ? {
        pid,
        error: new DaemonError("START_FAILED", `Cannot start: stopped during start-up (${signal})${logHint}`, { pid }),
      }
      : undefined;
  };
  for (;;) {
    const left = deadline - Date.now();
    if (!libc.waitReadable(fd, Math.max(0, Math.min(left, 20)))) {
      const stop = stopped();
      if (stop) return stop;
      if (left <= 0) {
        const error = new DaemonError(
          "START_FAILED",
          `Cannot start: the entry was not ready within ${
            timeoutMs / 1000
          } s${logHint}: raise --start-timeout, or call ready() if it never listens`,
          { pid },
        );
        return { pid, error };
      }
      await host.sleep(0); // lets a SIGTERM or SIGINT listener run
      continue;
    }
    const chunk = libc.read(fd, 65536);
    if (chunk.length === 0) {
      await host.sleep(0); // the daemon may have exited because we were stopped
      const error = new DaemonError(
        "START_FAILED",
        `Cannot start: the daemon exited during start-up without a report${logHint}`,
        { pid },
      );
      return stopped() ?? { pid, error };
    }
    for (const report of reader.push(chunk)) {
      if (report.kind === "PID") pid = report.pid;
      else if (report.kind === "LOCKED") watch.onLocked?.();
      else if (report.kind === "READY") {
        // The daemon closes its end right after: wait for that, so no socket of ours is left in it.
        while (libc.waitReadable(fd, 1000) && libc.read(fd, 512).length > 0);
        await host.sleep(0); // a stop signal already received: its listener runs now
        return stopped() ?? { pid };
      } else if (report.kind === "ERROR") {
        return { pid, error: new DaemonError(report.code, report.message, { pid }), reported: true };
      }
    }
  }
}
