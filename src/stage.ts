/**
 * The stage: what a daemonic parent (launcher, master, old master) hands the process it re-executes. It
 * goes through fd 3, a socket pair whose other end the parent holds: the parent writes the stage as one
 * JSON line before it spawns, the environment only says where to read it (`DAEMONIC_STAGE=3`). The same
 * socket then carries the child's reports back (`READY`, `ERROR`, heartbeats). A marker inherited from a
 * caller's environment, without a socket and a valid stage behind it, is dropped with one warning.
 *
 * @module
 */
import { readlinkSync } from "node:fs";
import { isAbsolute } from "node:path";
import process from "node:process";
import { type ChildFd, type Libc, libc as systemLibc, O } from "../ffi/mod.ts";
import type { DaemonStage } from "./daemonize.ts";
import type { WorkerStage } from "./worker.ts";

/** The environment variable that marks a re-executed process; its value is the stage's fd. */
export const STAGE_ENV = "DAEMONIC_STAGE";
/** The fd of the stage socket in the child: the stage comes in on it, the reports go out on it. */
export const STAGE_FD = 3;
/** How long the child waits for the stage line; the parent writes it before it spawns, so it is there. */
const STAGE_WAIT_MS = 1000;

/** A socket pair for a child: `parentEnd` keeps the parent's side; `childEnd` goes to the child's fd 3 and
 * must be closed by the parent once spawned. The stage is already written into it; `env` marks the child. */
export function handOver(stage: DaemonStage | WorkerStage, libc: Libc = systemLibc): { parentEnd: number; childEnd: number; env: Record<string, string> } {
  const [parentEnd, childEnd] = libc.socketPair();
  libc.write(parentEnd, new TextEncoder().encode(JSON.stringify(stage) + "\n"));
  return { parentEnd, childEnd, env: { [STAGE_ENV]: String(STAGE_FD) } };
}

/** Spawns /bin/sh, which starts the daemon in the background with the stage socket on fd 3 and reports its
 * pid there. Returns the launcher's end of that socket. */
export function spawnDaemon(stage: DaemonStage, log: ChildFd, libc: Libc = systemLibc): number {
  const { parentEnd, childEnd, env } = handOver(stage, libc);
  let sh: number;
  try {
    sh = libc.spawn({
      path: "/bin/sh",
      // The daemon is the shell's background job, so it is not the session leader; the shell reports its pid.
      argv: ["sh", "-c", `"$0" "$@" &\necho "PID $!" >&${STAGE_FD}`, stage.command.path, ...stage.command.args],
      env: { ...process.env, ...env },
      fds: [{ path: "/dev/null", flags: O.RDONLY }, log, log, childEnd],
      setsid: true,
    });
  } catch (err) {
    libc.close(parentEnd);
    throw err;
  } finally {
    libc.close(childEnd);
  }
  libc.waitpid(sh);
  return parentEnd;
}

const isString = (v: unknown) => typeof v === "string";
const isStrings = (v: unknown) => Array.isArray(v) && v.every(isString);
const isNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);

/** The stage in `value` when it has every field its role needs, else `undefined`. */
function validStage(value: unknown): DaemonStage | WorkerStage | undefined {
  const s = value as Record<string, unknown> | null;
  if (typeof s !== "object" || s === null) return undefined;
  if (s.role === "daemon") {
    const c = s.command as Record<string, unknown> | null;
    const ok = isString(s.pidFile) && isAbsolute(s.pidFile as string) && typeof c === "object" && c !== null &&
      isString(c.path) && isStrings(c.args) && isString(c.cwd) && (s.args === undefined || isStrings(s.args)) &&
      (s.logFile === undefined || isString(s.logFile)) && (s.workers === undefined || isNumber(s.workers));
    return ok ? s as unknown as DaemonStage : undefined;
  }
  if (s.role === "worker") {
    const ok = Number.isInteger(s.id) && isString(s.name) && Number.isInteger(s.masterPid) && isStrings(s.args) &&
      (s.ready === "auto" || s.ready === "manual") && isNumber(s.heartbeatMs) && isNumber(s.timeout) && isString(s.chdir);
    return ok ? s as unknown as WorkerStage : undefined;
  }
  return undefined;
}

/** Reads one line from `fd`, waiting at most `ms`; `undefined` when none comes. */
function readLine(fd: number, ms: number, libc: Libc): string | undefined {
  const deadline = Date.now() + ms;
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const left = deadline - Date.now();
    if (left <= 0 || !libc.waitReadable(fd, left)) return undefined;
    const chunk = libc.read(fd, 65536);
    if (chunk.length === 0) return undefined;
    text += decoder.decode(chunk, { stream: true });
  }
  return text.slice(0, text.indexOf("\n"));
}

/**
 * Reads and removes the stage marker: the stage a daemonic parent handed over on fd 3 in a re-executed
 * daemon or worker, `undefined` in a launcher. A marker without a valid stage behind it is dropped with one
 * warning on stderr, and the process goes on as if it had not been set.
 */
export function takeStage(env: Record<string, string | undefined> = process.env, libc: Libc = systemLibc): DaemonStage | WorkerStage | undefined {
  const marker = env[STAGE_ENV];
  if (marker === undefined) return undefined;
  delete env[STAGE_ENV];
  let stage: DaemonStage | WorkerStage | undefined;
  try {
    if (marker === String(STAGE_FD) && readlinkSync(`/proc/self/fd/${STAGE_FD}`).startsWith("socket:")) {
      const line = readLine(STAGE_FD, STAGE_WAIT_MS, libc);
      if (line !== undefined) stage = validStage(JSON.parse(line));
    }
  } catch {
    // No fd 3, not a socket we can read, or not JSON: not handed over.
  }
  if (!stage) {
    console.error(`daemonic: ignoring ${STAGE_ENV} from the environment: no stage was handed over on fd ${STAGE_FD} (daemonic sets it only for the processes it starts): unset it`);
  }
  return stage;
}
