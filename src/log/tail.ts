/**
 * `--logs` where there is no `tail` (distroless images, a bare chroot): the last lines, and with `follow`
 * what is appended, by name across rotations, as GNU `tail -F -s 0.2` does: a new file at the path (after
 * logrotate's `create`) is read from its start once the old one is drained; a file shorter than what was
 * read (after `copytruncate`) is read again from its start.
 *
 * @module
 */
import { closeSync, fstatSync, openSync, readSync, statSync, writeSync } from "node:fs";

/** How often a followed log is looked at, as `tail -s 0.2`. */
const POLL_MS = 200;

/** Where the last `lines` lines of the open file `fd` of `size` bytes start (a final newline ends the last
 * line, it does not start an empty one). */
function startOfLastLines(fd: number, size: number, lines: number): number {
  const buf = new Uint8Array(65536);
  let newlines = 0;
  for (let pos = size; pos > 0 && lines > 0;) {
    const len = Math.min(buf.length, pos);
    pos -= len;
    readSync(fd, buf, 0, len, pos);
    for (let i = len - 1; i >= 0; i--) {
      if (buf[i] === 10 && pos + i !== size - 1 && ++newlines === lines) return pos + i + 1;
    }
  }
  return lines > 0 ? 0 : size;
}

/** Writes all of `data` on stdout, which may be a non-blocking pipe. */
function writeOut(data: Uint8Array): void {
  for (let done = 0; done < data.length;) {
    try {
      done += writeSync(1, data, done);
    } catch (err) {
      if ((err as { code?: string }).code !== "EAGAIN") throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

/** Copies `fd` from `offset` to its end onto stdout; returns the new offset. */
function copyFrom(fd: number, offset: number): number {
  const buf = new Uint8Array(65536);
  for (let n; (n = readSync(fd, buf, 0, buf.length, offset)) > 0; offset += n) writeOut(buf.subarray(0, n));
  return offset;
}

const identity = (s: { dev: number; ino: number }) => `${s.dev}:${s.ino}`;

function openLog(path: string): number | undefined {
  try {
    return openSync(path, "r");
  } catch {
    return undefined; // not there (yet, or between a rename and the new file)
  }
}

/** Follows `path` from `offset` in the file open as `fd` (none yet: `undefined`) until the process ends. */
async function followFrom(path: string, fd: number | undefined, offset: number): Promise<never> {
  for (;;) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (fd !== undefined) {
      if (fstatSync(fd).size < offset) offset = 0; // truncated in place: copytruncate
      offset = copyFrom(fd, offset); // the rest of the old file, even once renamed away
    }
    let now;
    try {
      now = statSync(path);
    } catch {
      continue;
    }
    if (fd !== undefined && identity(now) === identity(fstatSync(fd))) continue;
    const next = openLog(path);
    if (next === undefined) continue;
    if (fd !== undefined) closeSync(fd);
    fd = next;
    offset = copyFrom(fd, 0);
  }
}

/**
 * Prints the last `lines` lines of `path` and, with `follow`, what is appended until the process is
 * interrupted, following the path across rotations. Returns 0 (or never, when following).
 *
 * @example
 * ```ts
 * import { tailLog } from "./tail.ts";
 * import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
 * const dir = mkdtempSync("/tmp/daemonic-doc-");
 * writeFileSync(`${dir}/app.log`, "one\ntwo\nthree\n");
 * await tailLog(`${dir}/app.log`, 2, false); // prints "two" and "three"
 * rmSync(dir, { recursive: true });
 * ```
 */
export async function tailLog(path: string, lines: number, follow: boolean): Promise<number> {
  const fd = openLog(path);
  let offset = 0;
  try {
    if (fd !== undefined) offset = copyFrom(fd, startOfLastLines(fd, fstatSync(fd).size, lines));
  } catch (err) {
    if ((err as { code?: string }).code === "EPIPE") return 0; // the reader is gone, as `--logs | head`
    throw err;
  }
  if (!follow) {
    if (fd !== undefined) closeSync(fd);
    return 0;
  }
  return await followFrom(path, fd, offset).catch((err) => {
    if ((err as { code?: string }).code === "EPIPE") return 0;
    throw err;
  });
}
