/**
 * The runtime-neutral `Libc`: typed, errno-checked calls built on a runtime's {@linkcode RawLibc}.
 *
 * @module
 */
import { SystemCallError } from "./errors.ts";
import { addCloseActions, availability, ProcPidfds, spawnFlagWorks, spawnIn, throughSetsid } from "./_fallback.ts";
import type { RawLibc } from "./types.ts";

const ARM = typeof process !== "undefined" && process.arch === "arm64";

/** open(2) flags and other Linux constants (x86-64 and AArch64 differ only where marked). */
export const O = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  NOFOLLOW: ARM ? 0o100000 : 0o400000,
  CLOEXEC: 0o2000000,
} as const;

const F_GETLK = 5, F_SETLK = 6, F_DUPFD_CLOEXEC = 1030;
const F_RDLCK = 0, F_WRLCK = 1, F_UNLCK = 2;
const SYS_PIDFD_OPEN = 434, SYS_PIDFD_SEND_SIGNAL = 424;
const POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSID = 0x80;
const PR_SET_NAME = 15, PR_SET_PDEATHSIG = 1, PR_SET_CHILD_SUBREAPER = 36;
const POLLIN = 0x1;

/** What a spawned child gets at each fd: a parent fd to duplicate, or a path to open read-write. */
export type ChildFd = number | { path: string; flags: number; mode?: number };

/** Options of {@linkcode Libc.spawn}. */
export interface SpawnOptions {
  /** Absolute path of the program. */
  path: string;
  /** Its argv, argv[0] included. */
  argv: readonly string[];
  /** Its whole environment. */
  env: Record<string, string | undefined>;
  /** Child fd i is `fds[i]`; every fd from `fds.length` up is closed (glibc's closefrom file action). */
  fds: readonly ChildFd[];
  /** Start a new session (setsid) in the child. */
  setsid?: boolean;
  /** Working directory of the child (default: ours). */
  cwd?: string;
}

/** The libc calls daemonic makes, with errors thrown as {@linkcode SystemCallError}. */
export interface Libc {
  /** open(2); returns the fd. */
  open(path: string, flags: number, mode?: number): number;
  /** close(2). */
  close(fd: number): void;
  /** read(2) of up to `size` bytes; an empty array means end of file. */
  read(fd: number, size: number): Uint8Array;
  /** write(2) of all of `data`. */
  write(fd: number, data: Uint8Array): void;
  /** pipe2(2) with O_CLOEXEC: `[readEnd, writeEnd]`. */
  pipe(): [number, number];
  /** poll(2) for input on one fd; `true` when readable (or hung up), `false` on timeout. */
  waitReadable(fd: number, timeoutMs: number): boolean;
  /** dup2(2). */
  dup2(from: number, to: number): void;
  /** fcntl(F_SETFD, FD_CLOEXEC): the fd is not passed on to programs this process starts. */
  setCloseOnExec(fd: number): void;
  /** ftruncate(2). */
  truncate(fd: number, length: number): void;
  /** fcntl(F_SETLK) with a write lock on the whole file; `false` when another process holds a lock. */
  tryLock(fd: number): boolean;
  /** fcntl(F_GETLK): the pid holding a lock that conflicts with a write lock, or `null` when none does. */
  lockHolder(fd: number): number | null;
  /** fcntl(F_GETLK) with the conflicting lock's type: a read lock proves nothing (anyone who can read the
   * file can take one), so callers that trust a lock want `write`. */
  lockOwner(fd: number): { pid: number; type: "read" | "write" } | null;
  /** umask(2); returns the previous mask. */
  umask(mask: number): number;
  /** signal(sig, SIG_DFL). */
  resetSignal(signal: number): void;
  /** getsockopt(SO_ACCEPTCONN): `true` when `fd` is a listening socket. */
  isListening(fd: number): boolean;
  /** prctl(PR_SET_NAME): the name `ps` and `top` show (15 bytes at most). */
  setThreadName(name: string): void;
  /** prctl(PR_SET_PDEATHSIG): `signal` arrives when the parent exits. */
  setParentDeathSignal(signal: number): void;
  /** pidfd_open(2): a descriptor that becomes readable when `pid` exits. */
  pidfdOpen(pid: number): number;
  /** pidfd_send_signal(2): signal exactly the process the pidfd refers to. */
  pidfdSignal(pidfd: number, signal: number): void;
  /** waitpid(2); with `noHang`, `null` while the child runs. Returns the raw wait status. */
  waitpid(pid: number, noHang?: boolean): number | null;
  /** Sends one datagram to the AF_UNIX socket at `path` (a leading `@` means the abstract namespace). */
  sendDatagram(path: string, data: Uint8Array): void;
  /** posix_spawn(3) with default signal dispositions, an empty signal mask and only `fds` open. */
  spawn(options: SpawnOptions): number;
  /** prctl(PR_SET_CHILD_SUBREAPER): orphans among our descendants are re-parented to us, not to init. */
  setChildSubreaper(): void;
  /** waitpid(-1, WNOHANG): reaps any one child that has exited; `null` when none has (or there is no child). */
  reapAny(): { pid: number; status: number } | null;
  /** signal(sig, SIG_IGN). */
  ignoreSignal(signal: number): void;
  /** socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): two connected ends. */
  socketPair(): [number, number];
  /** fcntl(F_SETLKW): waits until this process holds a write lock on the whole file. */
  lockWaiting(fd: number): void;
}

const encoder = new TextEncoder();
const cstr = (s: string) => encoder.encode(s + "\0");

/**
 * Builds the {@linkcode Libc} from a runtime binding.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./mod.ts";
 * const [r, w] = libc.pipe();
 * ```
 */
export function createLibc(raw: RawLibc, without: readonly string[] = []): Libc {
  const f = raw.fn;
  const fail = (syscall: string, path?: string, errno = raw.errno()): never => {
    throw new SystemCallError(syscall, errno, raw.strerror(errno), path);
  };
  const check = (result: number | bigint, syscall: string, path?: string): number => {
    const n = Number(result);
    if (n === -1) fail(syscall, path);
    return n;
  };
  /** Calls that retry on EINTR. */
  const retry = (call: () => number | bigint, syscall: string): number => {
    for (;;) {
      const n = Number(call());
      if (n !== -1) return n;
      const errno = raw.errno();
      if (errno !== 4) fail(syscall, undefined, errno);
    }
  };
  const flock = (type: number) => {
    const buf = new Uint8Array(32); // struct flock: l_type, l_whence (short), l_start, l_len (off_t), l_pid
    new DataView(buf.buffer).setInt16(0, type, true);
    return buf;
  };
  // Newer than glibc 2.17 or Linux 4.18: a fallback stands in where missing; `without` forces it, to test it.
  const has = availability(raw, without, { POSIX_SPAWN_SETSID: () => spawnFlagWorks(raw, POSIX_SPAWN_SETSID) });
  const procPidfds = new ProcPidfds(raw, fail);
  const pidfdOpen = (pid: number): number => {
    if (has("pidfd_open")) {
      const fd = Number(f.syscall(SYS_PIDFD_OPEN, pid, 0, 0, 0));
      if (fd !== -1) return fd;
      const errno = raw.errno();
      if (errno !== 38 && errno !== 1) fail("pidfd_open", undefined, errno); // ENOSYS; EPERM from an old seccomp filter
      has.missing("pidfd_open");
    }
    return procPidfds.open(pid);
  };
  const cArray = (strings: readonly string[], keep: Uint8Array[]) => {
    const table = new BigUint64Array(strings.length + 1);
    strings.forEach((s, i) => {
      const bytes = cstr(s);
      keep.push(bytes);
      table[i] = raw.address(bytes);
    });
    return new Uint8Array(table.buffer);
  };

  const libc: Libc = {
    open: (path, flags, mode = 0o644) => check(f.open(cstr(path), flags | O.CLOEXEC, mode), "open", path),
    close(fd) {
      procPidfds.forget(fd);
      check(f.close(fd), "close");
    },
    read(fd, size) {
      const buf = new Uint8Array(size);
      return buf.subarray(0, retry(() => f.read(fd, buf, size), "read"));
    },
    write(fd, data) {
      for (let done = 0; done < data.length;) {
        const rest = data.subarray(done);
        done += retry(() => f.write(fd, rest, rest.length), "write");
      }
    },
    pipe() {
      const fds = new Int32Array(2);
      check(f.pipe2(new Uint8Array(fds.buffer), O.CLOEXEC), "pipe2");
      return [fds[0], fds[1]];
    },
    waitReadable(fd, timeoutMs) {
      if (procPidfds.has(fd)) return procPidfds.waitExited(fd, timeoutMs);
      const pfd = new Uint8Array(8); // struct pollfd: int fd; short events; short revents
      const view = new DataView(pfd.buffer);
      view.setInt32(0, fd, true);
      view.setInt16(4, POLLIN, true);
      return retry(() => f.poll(pfd, 1, Math.max(-1, Math.ceil(timeoutMs))), "poll") > 0;
    },
    dup2: (from, to) => void check(f.dup2(from, to), "dup2"),
    setCloseOnExec: (fd) => void check(f.fcntl(fd, 2 /* F_SETFD */, 1 /* FD_CLOEXEC */), "fcntl(F_SETFD)"),
    truncate: (fd, length) => void check(f.ftruncate(fd, length), "ftruncate"),
    tryLock(fd) {
      const lock = flock(F_WRLCK);
      if (Number(f.fcntl(fd, F_SETLK, raw.address(lock))) === 0) return true;
      const errno = raw.errno();
      if (errno === 11 || errno === 13) return false; // EAGAIN / EACCES: held elsewhere
      return fail("fcntl(F_SETLK)", undefined, errno);
    },
    lockHolder(fd) {
      const lock = flock(F_WRLCK);
      check(f.fcntl(fd, F_GETLK, raw.address(lock)), "fcntl(F_GETLK)");
      const view = new DataView(lock.buffer);
      return view.getInt16(0, true) === F_UNLCK ? null : view.getInt32(24, true);
    },
    lockOwner(fd) {
      const lock = flock(F_WRLCK);
      check(f.fcntl(fd, F_GETLK, raw.address(lock)), "fcntl(F_GETLK)");
      const view = new DataView(lock.buffer), type = view.getInt16(0, true);
      if (type === F_UNLCK) return null;
      return { pid: view.getInt32(24, true), type: type === F_RDLCK ? "read" : "write" };
    },
    umask: (mask) => Number(f.umask(mask)),
    resetSignal: (signal) => void f.signal(signal, 0),
    isListening(fd) {
      const value = new Int32Array(1), length = new Uint32Array([4]);
      const r = Number(f.getsockopt(fd, 1 /* SOL_SOCKET */, 30 /* SO_ACCEPTCONN */, new Uint8Array(value.buffer), new Uint8Array(length.buffer)));
      return r === 0 && value[0] === 1;
    },
    setThreadName(name) {
      const bytes = cstr(name.slice(0, 15));
      check(f.prctl(PR_SET_NAME, raw.address(bytes), 0, 0, 0), "prctl(PR_SET_NAME)");
    },
    setParentDeathSignal: (signal) => void check(f.prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)"),
    pidfdOpen,
    pidfdSignal(pidfd, signal) {
      if (procPidfds.has(pidfd)) procPidfds.signal(pidfd, signal);
      else check(f.syscall(SYS_PIDFD_SEND_SIGNAL, pidfd, signal, 0, 0), "pidfd_send_signal");
    },
    waitpid(pid, noHang = false) {
      const status = new Int32Array(1);
      const r = retry(() => f.waitpid(pid, new Uint8Array(status.buffer), noHang ? 1 : 0), "waitpid");
      return r === 0 ? null : status[0];
    },
    sendDatagram(path, data) {
      const name = encoder.encode(path);
      if (name.length > 107) throw new SystemCallError("sendto", 36, "File name too long", path);
      const address = new Uint8Array(110); // struct sockaddr_un: sa_family_t, char sun_path[108]
      new DataView(address.buffer).setUint16(0, 1 /* AF_UNIX */, true);
      address.set(name, 2);
      if (path.startsWith("@")) address[2] = 0; // abstract: no NUL terminator, exact length
      const length = 2 + name.length + (path.startsWith("@") ? 0 : 1);
      const fd = check(f.socket(1, 2 /* SOCK_DGRAM */ | O.CLOEXEC, 0), "socket");
      try {
        check(f.sendto(fd, data, data.length, 0x4000 /* MSG_NOSIGNAL */, address, length), "sendto", path);
      } finally {
        f.close(fd);
      }
    },
    spawn(options) {
      if (options.setsid && !has("POSIX_SPAWN_SETSID")) return libc.spawn(throughSetsid(options));
      if (options.cwd && !has("posix_spawn_file_actions_addchdir_np")) {
        return spawnIn(raw, options.cwd, fail, () => libc.spawn({ ...options, cwd: undefined }));
      }
      const keep: Uint8Array[] = [];
      const actions = new Uint8Array(256), attr = new Uint8Array(512); // sizeof: 80 and 336 on glibc x86-64
      const spawnCheck = (r: number | bigint, what: string) => {
        if (Number(r) !== 0) fail(what, undefined, Number(r));
      };
      // Move every parent fd above the child's range first, so no dup2 action overwrites a later source.
      const high = options.fds.map((fd) => typeof fd === "number" ? check(f.fcntl(fd, F_DUPFD_CLOEXEC, options.fds.length), "fcntl(F_DUPFD)") : fd);
      spawnCheck(f.posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init");
      spawnCheck(f.posix_spawnattr_init(attr), "posix_spawnattr_init");
      try {
        high.forEach((fd, target) => {
          if (typeof fd === "number") {
            spawnCheck(f.posix_spawn_file_actions_adddup2(actions, fd, target), "posix_spawn_file_actions_adddup2");
          } else {
            const path = cstr(fd.path);
            keep.push(path);
            spawnCheck(f.posix_spawn_file_actions_addopen(actions, target, path, fd.flags, fd.mode ?? 0o644), "posix_spawn_file_actions_addopen");
          }
        });
        if (has("posix_spawn_file_actions_addclosefrom_np")) {
          spawnCheck(f.posix_spawn_file_actions_addclosefrom_np(actions, options.fds.length), "posix_spawn_file_actions_addclosefrom_np");
        } else {
          addCloseActions(raw, actions, options.fds.length, fail);
        }
        if (options.cwd) {
          const cwd = cstr(options.cwd);
          keep.push(cwd);
          spawnCheck(f.posix_spawn_file_actions_addchdir_np(actions, cwd), "posix_spawn_file_actions_addchdir_np");
        }
        const all = new Uint8Array(128).fill(0xff), none = new Uint8Array(128); // sigset_t
        spawnCheck(f.posix_spawnattr_setsigdefault(attr, all), "posix_spawnattr_setsigdefault");
        spawnCheck(f.posix_spawnattr_setsigmask(attr, none), "posix_spawnattr_setsigmask");
        const flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (options.setsid ? POSIX_SPAWN_SETSID : 0);
        spawnCheck(f.posix_spawnattr_setflags(attr, flags), "posix_spawnattr_setflags");
        const env = Object.entries(options.env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
        const pid = new Int32Array(1);
        const r = f.posix_spawn(new Uint8Array(pid.buffer), cstr(options.path), actions, attr, cArray(options.argv, keep), cArray(env, keep));
        if (Number(r) !== 0) fail("posix_spawn", options.path, Number(r));
        return pid[0];
      } finally {
        f.posix_spawn_file_actions_destroy(actions);
        f.posix_spawnattr_destroy(attr);
        for (const fd of high) if (typeof fd === "number") f.close(fd);
      }
    },
    setChildSubreaper: () => void check(f.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)"),
    reapAny() {
      const status = new Int32Array(1);
      const pid = Number(f.waitpid(-1, new Uint8Array(status.buffer), 1 /* WNOHANG */));
      const errno = pid === -1 ? raw.errno() : 0;
      if (errno !== 0 && errno !== 10 /* ECHILD */ && errno !== 4 /* EINTR */) fail("waitpid", undefined, errno);
      return pid > 0 ? { pid, status: status[0] } : null;
    },
    ignoreSignal: (signal) => void check(f.signal(signal, 1), "signal"),
    socketPair() {
      const fds = new Int32Array(2);
      check(f.socketpair(1 /* AF_UNIX */, 1 /* SOCK_STREAM */ | O.CLOEXEC, 0, new Uint8Array(fds.buffer)), "socketpair");
      return [fds[0], fds[1]];
    },
    lockWaiting(fd) {
      const lock = flock(F_WRLCK);
      retry(() => f.fcntl(fd, 7 /* F_SETLKW */, raw.address(lock)), "fcntl(F_SETLKW)");
    },
  };
  return libc;
}
