/**
 * `--log-timestamps`: a worker's fds 1 and 2 are a pipe whose reader is the master (its event loop is the
 * one that never runs entry code, so a worker blocked in a busy loop cannot stop it). The master stamps each
 * complete line with the time, the worker's pid and id, and appends every batch of whole lines to its own
 * fd 1 — the log file, which it reopens and holds for everyone — with one write(2). A line not yet ended is
 * held until its newline; a line the writer never ends is written with a marker when the pipe closes.
 *
 * @module
 */
import { type Libc, libc as systemLibc } from "../../ffi/mod.ts";
import type { LogFormat } from "./lines.ts";

/** A pipe's buffer: a flat-out writer fills it while the master's loop sleeps between ticks. */
const PIPE_BYTES = 1024 * 1024;
/** A "line" longer than this is cut and written with a marker, so one writer cannot hold unbounded memory. */
const LONGEST_LINE = 64 * 1024;
/** Reads per {@linkcode OutputRelay.pump}, so one chatty worker cannot starve the master's loop. */
const READS_PER_PUMP = 16;
/** Lines getLogger() (or the runner) already stamped: text's ISO time, or JSON Lines' object. */
const STAMPED = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z |\{"pid":)/;
// How a runner line starts: text's time, level and name, or JSON Lines' first fields.
const RUNNER_TEXT = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ daemonic\[/.source;
const RUNNER_JSON =
  /\{"pid":\d+,(?:"worker":[^,]*,)?"@timestamp":"[^"]*","level":"[A-Z]+","message":.*"logger":"daemonic"/.source;
/** A runner line (lines.ts) written by the worker itself right after output it left without a newline (a
 * kept-alive entry's "SIGTERM received" after a partial line): it starts a line of its own. */
const RUNNER_MIDLINE = new RegExp(`(?<=[^\\n])(?=${RUNNER_TEXT}|${RUNNER_JSON})`, "g");

const encoder = new TextEncoder();

/**
 * A relay pipe with a 1 MiB buffer: `[readEnd, writeEnd]`, both close-on-exec; the write end goes to a
 * worker's fds 1 and 2, the read end to an {@linkcode OutputRelay}.
 *
 * @example
 * ```ts
 * import { OutputRelay, relayPipe } from "./relay.ts";
 * import { libc } from "../../ffi/mod.ts";
 * const [readEnd, writeEnd] = relayPipe();
 * libc.write(writeEnd, new TextEncoder().encode("hello\nhalf a li"));
 * libc.close(writeEnd);
 * const relay = new OutputRelay(readEnd, 1234, 1, "text");
 * relay.pump(); // 2026-…Z [1234 worker 1]: hello
 * relay.pump(); // 2026-…Z [1234 worker 1]: half a li [no newline at exit]
 * ```
 */
export function relayPipe(libc: Libc = systemLibc): [number, number] {
  const [readEnd, writeEnd] = libc.pipe();
  try {
    libc.setPipeSize(writeEnd, PIPE_BYTES);
  } catch {
    // Above /proc/sys/fs/pipe-max-size for an unprivileged user: the default 64 KiB works, only slower.
  }
  return [readEnd, writeEnd];
}

/** The master's end of one worker's output pipe. */
export class OutputRelay {
  private partial = "";
  private readonly decoder = new TextDecoder();
  /** The pipe's read end; -1 once every writer closed it. */
  fd: number;

  constructor(
    fd: number,
    readonly pid: number,
    readonly id: number,
    readonly format: LogFormat,
    private readonly libc: Libc = systemLibc,
  ) {
    this.fd = fd;
  }

  /** `lines` (each without its newline) as the log shows them. */
  private stamp(lines: string[]): string {
    const time = new Date().toISOString();
    const head = `${time} [${this.pid} worker ${this.id}]: `;
    const json = (line: string) =>
      `{"pid":${this.pid},"worker":${this.id},"@timestamp":"${time}","message":${JSON.stringify(line)}}`;
    return lines.map((line) => STAMPED.test(line) ? line : this.format === "json" ? json(line) : head + line).join(
      "\n",
    ) + "\n";
  }

  /**
   * Reads what the worker wrote, appends its whole lines, stamped, to `out` (one write per read); returns
   * whether it read anything. At end of file it writes the held partial line with a marker and closes.
   */
  pump(out = 1): boolean {
    let read = false;
    for (let i = 0; i < READS_PER_PUMP && this.fd >= 0 && this.libc.waitReadable(this.fd, 0); i++) {
      const chunk = this.libc.read(this.fd, 65536);
      if (chunk.length === 0) {
        this.close(out);
        break;
      }
      read = true;
      const text = (this.partial + this.decoder.decode(chunk, { stream: true })).replace(RUNNER_MIDLINE, "\n");
      const end = text.lastIndexOf("\n");
      this.partial = end < 0 ? text : text.slice(end + 1);
      const lines = end < 0 ? [] : text.slice(0, end).split("\n");
      if (this.partial.length > LONGEST_LINE) {
        lines.push(`${this.partial} [line cut: over ${LONGEST_LINE} characters]`);
        this.partial = "";
      }
      if (lines.length) this.write(out, this.stamp(lines));
    }
    return read;
  }

  /** Writes the line held without its newline, with a marker, and closes the pipe. */
  close(out = 1): void {
    if (this.fd < 0) return;
    this.partial += this.decoder.decode();
    if (this.partial) this.write(out, this.stamp([`${this.partial} [no newline at exit]`]));
    this.partial = "";
    this.libc.close(this.fd);
    this.fd = -1;
  }

  private write(out: number, text: string): void {
    try {
      this.libc.write(out, encoder.encode(text));
    } catch {
      // The log cannot take it (disk full): the master's own lines would fail the same way.
    }
  }
}

/**
 * Pumps every relay once (see {@linkcode OutputRelay.pump}) and drops the closed ones from `relays`;
 * returns whether any read something (then the master's loop comes back at once).
 *
 * @example
 * ```ts
 * import { pumpAll } from "./relay.ts";
 * console.log(pumpAll([])); // false
 * ```
 */
export function pumpAll(relays: OutputRelay[]): boolean {
  let read = false;
  for (const relay of relays) read = relay.pump() || read;
  for (let i = relays.length - 1; i >= 0; i--) if (relays[i].fd < 0) relays.splice(i, 1);
  return read;
}
