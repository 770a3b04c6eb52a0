/**
 * The registry of running daemons, so a daemon stays findable when its pid file or the pid file's directory
 * is removed. It lives in the private {@linkcode runtimeDir} (`/run/daemonic` as root).
 *
 * Entry format (stable: `--list` reads it): one file per daemon, `<dir>/<sha256(pidFile) in hex, 32
 * chars>.daemon.json`, mode 0600, holding one JSON object
 * `{"pidFile": absolute path, "name": string, "pid": number, "exe": path of the executable, "startedAt": ms
 * since the epoch, "settings": the daemon's resolved settings (stage.ts DaemonSettings: workers, logFile,
 * args, …), "command": {"path", "args", "cwd"} as started, "env": the environment it was started with}` and a
 * newline: what `--restart` starts again. The entry is its owner's alone (0600, in a 0700 directory): the
 * environment may hold secrets, and `--list --json` never prints it.
 * The daemon opens it once, write-locks it with fcntl for its whole life and removes it on exit. Only a write
 * lock held by a process of the entry's owner (or on root's entry: see {@linkcode holdsFor}) counts: an entry nobody
 * holds is stale and is removed by whoever finds it.
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { type Libc, libc as systemLibc, O, SystemCallError } from "../ffi/mod.ts";
import { DaemonError } from "./errors.ts";
import type { Command, DaemonSettings } from "./stage.ts";
import { checkPrivateDir, ensurePrivateDir, runtimeDir, statFd } from "./safe_file.ts";

/** What an entry holds; `pid` is the lock holder's when read back. */
export interface RegistryEntry {
  pidFile: string;
  name: string;
  pid: number;
  exe: string;
  startedAt: number;
  /** How it was started (absent in entries of a daemon started by the library's acquire()). */
  settings?: DaemonSettings;
  command?: Command;
  /** The environment it was started with (before its `--env-file`s), for `--restart` from another shell. */
  env?: Record<string, string>;
  /** A foreground run without a pid file, registered while it is ready (roles/foreground.ts). */
  foreground?: boolean;
}

/** What a daemon remembers of its start: see {@linkcode RegistryEntry}. */
export type StartRecord = Pick<RegistryEntry, "settings" | "command" | "env" | "foreground">;

/** The most an entry may take: room for a large environment. */
const ENTRY_MAX = 1 << 18;

const SUFFIX = ".daemon.json";

/** FNV-1a, 64 bits, in hex: names an entry after its pid-file path. Not node:crypto, whose import alone costs
 * every --status, --stop and launcher 2–4 ms; the entry holds the path itself, so a collision is detected. */
function fnv1a64(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) hash = BigInt.asUintN(64, (hash ^ BigInt(byte)) * 0x100000001b3n);
  return hash.toString(16).padStart(16, "0");
}

/** The entry file for the daemon of `pidFile`. */
export function entryPath(pidFile: string, dir = runtimeDir()): string {
  return `${dir}/${fnv1a64(pidFile)}${SUFFIX}`;
}

/** Where a foreground master without a pid file keeps its worker table for `--status`: beside its entry. */
export function foregroundTableFile(pidFile: string, dir = runtimeDir()): string {
  return entryPath(pidFile, dir).replace(SUFFIX, ".workers");
}

/** Whether the process `pid` runs as `uid` (an unreadable /proc entry, e.g. hidepid, is taken on trust). */
export function runsAs(pid: number, uid: number): boolean {
  try {
    return host.stat(`/proc/${pid}`).uid === uid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ENOENT";
  }
}

/**
 * Whether a write lock `pid` holds on a file with `stats` proves that daemon: it runs as the file's owner,
 * or the file is root's and writable by root alone, so the fd it locks through was opened by root — a daemon
 * of `--user` keeps the fds root opened for it (see privileges.ts).
 *
 * @example
 * ```ts
 * import { statSync } from "node:fs";
 * import { holdsFor } from "./registry.ts";
 * console.log(holdsFor(process.pid, statSync("/proc/self/exe"))); // true: root's file, writable by root alone
 * ```
 */
export function holdsFor(pid: number, stats: { uid: number; mode: number }): boolean {
  return runsAs(pid, stats.uid) || (stats.uid === 0 && (stats.mode & 0o022) === 0);
}

/** A daemon's own entry, held (opened once, write-locked) until {@linkcode Registration.remove}. */
export class Registration {
  private constructor(
    private path: string,
    private readonly fd: number,
    private entry: RegistryEntry,
    private readonly libc: Libc,
  ) {}

  /** Creates and locks the entry for `pidFile`; throws ALREADY_RUNNING when a live daemon holds it. */
  static claim(
    pidFile: string,
    name: string,
    pid = host.pid(),
    libc: Libc = systemLibc,
    start: StartRecord = {},
  ): Registration {
    const dir = runtimeDir();
    ensurePrivateDir(dir);
    listRegistered(libc); // sweeps the entries of daemons that were killed (SIGKILL leaves them)
    const path = entryPath(pidFile, dir);
    // O_APPEND: after ftruncate(0) a write lands at 0 without a seek.
    const fd = libc.open(path, O.RDWR | O.CREAT | O.APPEND | O.NOFOLLOW | O.NONBLOCK | O.NOCTTY, 0o600);
    if (!statFd(fd).isFile) {
      libc.close(fd);
      throw new DaemonError("CANNOT_CREATE", `Cannot register the daemon: ${path} is not a regular file: remove it`);
    }
    if (!libc.tryLock(fd)) {
      const holder = libc.lockHolder(fd);
      libc.close(fd);
      throw new DaemonError(
        "ALREADY_RUNNING",
        `Cannot start: already running as pid ${holder} (registered in ${path}, its pid file ${pidFile} is ` +
          `missing): stop it with --stop --pid-file ${pidFile}`,
        { pid: holder ?? undefined },
      );
    }
    const registration = new Registration(path, fd, {
      pidFile,
      name,
      pid,
      exe: host.readLink("/proc/self/exe"),
      startedAt: Date.now(),
      ...start,
    }, libc);
    registration.write();
    return registration;
  }

  private write(): void {
    this.libc.truncate(this.fd, 0);
    this.libc.write(this.fd, new TextEncoder().encode(JSON.stringify(this.entry) + "\n"));
  }

  /** Re-keys the entry (the lock goes with the inode), e.g. when the pid file moves to `.oldbin`. */
  move(pidFile: string): void {
    const to = entryPath(pidFile, this.path.slice(0, this.path.lastIndexOf("/")));
    host.rename(this.path, to);
    this.path = to;
    this.entry = { ...this.entry, pidFile };
    this.write();
  }

  /** Removes the entry if it is still ours, then drops the lock. */
  remove(): void {
    try {
      const mine = statFd(this.fd), there = host.lstat(this.path);
      if (mine.ino === there.ino && mine.dev === there.dev) host.unlink(this.path);
    } catch {
      // Already gone.
    }
    this.libc.close(this.fd);
  }
}

/** Reads the entry at `path`: the live one with its holder's pid, or `null` (a stale one is removed). */
function readEntry(path: string, libc: Libc, onStale?: (entry: RegistryEntry) => void): RegistryEntry | null {
  let fd: number;
  try {
    fd = libc.open(path, O.RDONLY | O.NOFOLLOW | O.NONBLOCK | O.NOCTTY);
  } catch (err) {
    if (err instanceof SystemCallError && (err.code === "ENOENT" || err.code === "ENOTDIR")) return null;
    throw err;
  }
  try {
    const stats = statFd(fd);
    if (!stats.isFile) return null;
    const owner = libc.lockOwner(fd);
    if (owner?.type === "write" && holdsFor(owner.pid, stats)) {
      const text = new TextDecoder().decode(libc.read(fd, ENTRY_MAX));
      return { ...JSON.parse(text) as RegistryEntry, pid: owner.pid };
    }
    if (!owner) {
      const there = host.lstat(path);
      const text = onStale ? new TextDecoder().decode(libc.read(fd, ENTRY_MAX)) : "";
      if (text) onStale!(JSON.parse(text) as RegistryEntry); // an empty one is being created: leave it
      else if (onStale) return null;
      if (there.ino === stats.ino && there.dev === stats.dev) host.unlink(path);
    }
    return null;
  } catch {
    return null;
  } finally {
    libc.close(fd);
  }
}

/**
 * The running daemon registered for `pidFile`, or `null`. Throws CANNOT_CREATE when the registry directory
 * is unsafe.
 *
 * @example
 * ```ts
 * import { findRegistered } from "./registry.ts";
 * console.log(findRegistered("/nonexistent/app.pid")); // null: no daemon registered for that path
 * ```
 */
export function findRegistered(pidFile: string, libc: Libc = systemLibc): RegistryEntry | null {
  const dir = runtimeDir();
  checkPrivateDir(dir);
  const entry = readEntry(entryPath(pidFile, dir), libc);
  return entry?.pidFile === pidFile ? entry : null;
}

/** Every running daemon registered by this user (stale entries are removed on the way, and handed to
 * `onStale` first: a daemon killed with SIGKILL, or whose supervisor was). */
export function listRegistered(libc: Libc = systemLibc, onStale?: (entry: RegistryEntry) => void): RegistryEntry[] {
  const dir = runtimeDir();
  checkPrivateDir(dir);
  let names: string[];
  try {
    names = host.readDir(dir).filter((n) => n.endsWith(SUFFIX));
  } catch {
    return [];
  }
  return names.map((n) => readEntry(`${dir}/${n}`, libc, onStale)).filter((e): e is RegistryEntry => e !== null);
}
