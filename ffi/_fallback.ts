/**
 * Stand-ins for what glibc before 2.34 or Linux before 5.3 lacks, so one binary runs on glibc 2.17 and
 * Linux 4.18 (Debian 10/11, Ubuntu 20.04, RHEL 8): each is used only where the newer call is missing.
 *
 * @module
 */
import { host } from "./_host.ts";
import type { PidfdStandIns, RawLibc } from "./types.ts";

const O_RDONLY = 0, O_DIRECTORY = 0o200000, O_CLOEXEC = 0o2000000;
const O_DIRECTORY_ARM = 0o40000;
const ARM = host.arm64;
const ESRCH = 3, ENOENT = 2;

const encoder = new TextEncoder();
const cstr = (s: string) => encoder.encode(s + "\0");

/** The failure the caller turns into a `SystemCallError`. */
type Fail = (syscall: string, path?: string, errno?: number) => never;

/**
 * Instead of `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34): one close action for each fd from
 * `from` up that this process has open now (read from /proc/self/fd). An fd opened later by another thread
 * is close-on-exec, as both runtimes open every fd; glibc ignores a close action on an fd already closed.
 */
export function addCloseActions(raw: RawLibc, actions: Uint8Array, from: number, fail: Fail): void {
  for (const name of host.readDir("/proc/self/fd")) {
    const fd = Number(name);
    if (fd < from) continue;
    const r = Number(raw.fn.posix_spawn_file_actions_addclose(actions, fd));
    if (r !== 0) fail("posix_spawn_file_actions_addclose", undefined, r);
  }
}

/**
 * Instead of `posix_spawn_file_actions_addchdir_np` (glibc 2.29): this process enters `cwd` for the spawn
 * (the child inherits it at clone time) and returns to where it was through an fd, so a renamed directory
 * cannot misdirect it. Only the master spawns with a cwd, and it runs no user code meanwhile.
 */
export function spawnIn<T>(raw: RawLibc, cwd: string, fail: Fail, spawn: () => T): T {
  const here = Number(raw.fn.open(cstr("."), O_RDONLY | (ARM ? O_DIRECTORY_ARM : O_DIRECTORY) | O_CLOEXEC, 0));
  if (here === -1) fail("open", ".");
  try {
    if (Number(raw.fn.chdir(cstr(cwd))) === -1) fail("chdir", cwd);
    try {
      return spawn();
    } finally {
      if (Number(raw.fn.fchdir(here)) === -1) fail("fchdir");
    }
  } finally {
    raw.fn.close(here);
  }
}

/**
 * Instead of a pidfd (Linux 5.3): an fd of the process's /proc directory. It pins the process as a pidfd
 * does: once the process is reaped, every lookup through it fails with ESRCH, even if the pid is reused, so
 * a signal goes only to a process the fd still refers to (checked just before `kill`), and exit is seen as
 * a zombie or a vanished entry, polled.
 */
export class ProcPidfds implements PidfdStandIns {
  private readonly pids = new Map<number, number>();
  constructor(private readonly raw: RawLibc, private readonly fail: Fail) {}

  /** Opens /proc/PID; throws ESRCH (as pidfd_open does) when there is no such process. */
  open(pid: number): number {
    const fd = Number(
      this.raw.fn.open(cstr(`/proc/${pid}`), O_RDONLY | (ARM ? O_DIRECTORY_ARM : O_DIRECTORY) | O_CLOEXEC, 0),
    );
    if (fd === -1) {
      const errno = this.raw.errno();
      this.fail("pidfd_open", undefined, errno === ENOENT ? ESRCH : errno);
    }
    this.pids.set(fd, pid);
    return fd;
  }

  /** Whether `fd` is one of these stand-ins. */
  has(fd: number): boolean {
    return this.pids.has(fd);
  }

  /** `fd` is being closed. */
  forget(fd: number): void {
    this.pids.delete(fd);
  }

  /** Whether the process has exited: reaped, or a zombie (state Z or X) whose other threads are gone too (a
   * leader that exited first shows Z while they run: it cannot be reaped yet, and its pidfd is not readable). */
  exited(fd: number): boolean {
    const stat = Number(this.raw.fn.openat(fd, cstr("stat"), O_RDONLY | O_CLOEXEC, 0));
    if (stat === -1) return true;
    try {
      const buf = new Uint8Array(512);
      const n = Number(this.raw.fn.read(stat, buf, buf.length));
      if (n <= 0) return true;
      const text = new TextDecoder().decode(buf.subarray(0, n));
      const state = text[text.lastIndexOf(")") + 2]; // "pid (comm) S ...": comm may hold ")"
      if (state !== "Z" && state !== "X") return false;
      try {
        return host.readDir(`/proc/self/fd/${fd}/task`).length <= 1;
      } catch {
        return true; // reaped meanwhile
      }
    } finally {
      this.raw.fn.close(stat);
    }
  }

  /** kill(2) the process, only while the fd still refers to it. */
  signal(fd: number, signal: number): void {
    if (this.exited(fd)) this.fail("pidfd_send_signal", undefined, ESRCH);
    if (Number(this.raw.fn.kill(this.pids.get(fd)!, signal)) === -1) this.fail("pidfd_send_signal");
  }

  /** Polls for exit every few milliseconds, up to `timeoutMs` (negative: no limit). */
  waitExited(fd: number, timeoutMs: number): boolean {
    const deadline = timeoutMs < 0 ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      if (this.exited(fd)) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      this.raw.fn.poll(null, 0, Math.min(5, Math.ceil(left))); // a sleep
    }
  }
}

/** `has(name)`: whether libc has `name` (resolved once, on first ask: a missing symbol throws there; `probes`
 * answer for what is not a symbol) and it is not listed in `without`; `has.missing(name)` records one found
 * missing at run time. */
export function availability(
  raw: RawLibc,
  without: readonly string[],
  probes: Record<string, () => boolean> = {},
): ((name: string) => boolean) & { missing(name: string): void } {
  const found = new Map<string, boolean>();
  const has = (name: string): boolean => {
    if (!found.has(name)) {
      let ok = !without.includes(name);
      try {
        if (ok && name in probes) ok = probes[name]();
        else if (ok && name in raw.fn) void raw.fn[name as keyof RawLibc["fn"]];
      } catch {
        ok = false;
      }
      found.set(name, ok);
    }
    return found.get(name)!;
  };
  return Object.assign(has, { missing: (name: string) => void found.set(name, false) });
}

/** Whether `posix_spawnattr_setflags` takes `flag`: glibc before 2.26 refuses POSIX_SPAWN_SETSID (EINVAL). */
export function spawnFlagWorks(raw: RawLibc, flag: number): boolean {
  const attr = new Uint8Array(512);
  if (Number(raw.fn.posix_spawnattr_init(attr)) !== 0) return false;
  try {
    return Number(raw.fn.posix_spawnattr_setflags(attr, flag)) === 0;
  } finally {
    raw.fn.posix_spawnattr_destroy(attr);
  }
}

/**
 * Instead of POSIX_SPAWN_SETSID (glibc 2.26): util-linux's setsid(1) starts the session and execs the
 * program in the same process (it forks only when it leads a process group, and a spawned child does not).
 */
export function throughSetsid<T extends { path: string; argv: readonly string[]; setsid?: boolean }>(options: T): T {
  const setsid = ["/usr/bin/setsid", "/bin/setsid"].find((path) => host.exists(path)) ?? "/usr/bin/setsid";
  return { ...options, path: setsid, argv: ["setsid", options.path, ...options.argv.slice(1)], setsid: false };
}
