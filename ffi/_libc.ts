/**
 * The runtime-neutral `Libc`: typed, errno-checked calls built on a runtime's {@linkcode RawLibc}.
 *
 * @module
 */
import { SystemCallError } from "./errors.ts";
import { availability, ProcPidfds, spawnFlagWorks } from "./_fallback.ts";
import { reuseportCalls } from "./_reuseport.ts";
import { sockDiagCalls } from "./_sock_diag.ts";
import { POSIX_SPAWN_SETSID, spawn } from "./_spawn.ts";
import { userCalls } from "./_users.ts";
import type { Kit, Libc, RawLibc, SpawnOptions } from "./types.ts";
import { host } from "./_host.ts";

export type { ChildFd, Libc, SpawnOptions } from "./types.ts";

const ARM = host.arm64;

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

const F_GETLK = 5, F_SETLK = 6;
const F_RDLCK = 0, F_WRLCK = 1, F_UNLCK = 2;
const SYS_PIDFD_OPEN = 434, SYS_PIDFD_SEND_SIGNAL = 424;
const PR_SET_NAME = 15, PR_SET_PDEATHSIG = 1, PR_SET_CHILD_SUBREAPER = 36;
const POLLIN = 0x1;
const EINTR = 4, ECONNRESET = 104;

const encoder = new TextEncoder();
const cstr = (s: string) => encoder.encode(s + "\0");

function kitOf(raw: RawLibc, without: readonly string[]): Kit {
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

  return { f, raw, fail, check, retry, flock, has, procPidfds, pidfdOpen, cArray };
}

/** Files, pipes, sockets and polling. */
function fileCalls({ f, raw, fail, check, retry, procPidfds }: Kit): Partial<Libc> {
  return {
    open: (path, flags, mode = 0o644) => check(f.open(cstr(path), flags | O.CLOEXEC, mode), "open", path),
    close(fd) {
      procPidfds.forget(fd);
      check(f.close(fd), "close");
    },
    read(fd, size) {
      const buf = new Uint8Array(size);
      for (;;) {
        const n = Number(f.read(fd, buf, size));
        if (n !== -1) return buf.subarray(0, n);
        const errno = raw.errno();
        // A socket whose peer exited with our data unread (a child that died before it took its stage) is reset:
        // to every reader here that is the end of what it will say.
        if (errno === ECONNRESET) return buf.subarray(0, 0);
        if (errno !== EINTR) fail("read", undefined, errno);
      }
    },
    peek(fd, size) {
      const buf = new Uint8Array(size);
      return buf.subarray(0, retry(() => f.recv(fd, buf, size, 2 /* MSG_PEEK */), "recv"));
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
    setPipeSize: (fd, bytes) => void check(f.fcntl(fd, 1031, /* F_SETPIPE_SZ */ bytes), "fcntl(F_SETPIPE_SZ)"),
    waitReadable(fd, timeoutMs) {
      if (procPidfds.has(fd)) return procPidfds.waitExited(fd, timeoutMs);
      const pfd = new Uint8Array(8); // struct pollfd: int fd; short events; short revents
      const view = new DataView(pfd.buffer);
      view.setInt32(0, fd, true);
      view.setInt16(4, POLLIN, true);
      return retry(() => f.poll(pfd, 1, Math.max(-1, Math.ceil(timeoutMs))), "poll") > 0;
    },
    dup2: (from, to) => void check(f.dup2(from, to), "dup2"),
    duplicate: (fd) => check(f.fcntl(fd, 1030, /* F_DUPFD_CLOEXEC */ 10), "fcntl(F_DUPFD_CLOEXEC)"),
    setCloseOnExec: (fd) => void check(f.fcntl(fd, 2, /* F_SETFD */ 1 /* FD_CLOEXEC */), "fcntl(F_SETFD)"),
    truncate: (fd, length) => void check(f.ftruncate(fd, length), "ftruncate"),
  };
}

/** Socket pairs and datagrams. */
function socketCalls({ f, check }: Kit): Partial<Libc> {
  return {
    socketPair() {
      const fds = new Int32Array(2);
      check(
        f.socketpair(1, /* AF_UNIX */ 1 /* SOCK_STREAM */ | O.CLOEXEC, 0, new Uint8Array(fds.buffer)),
        "socketpair",
      );
      return [fds[0], fds[1]];
    },
    sendDatagram(path, data) {
      const name = encoder.encode(path);
      if (name.length > 107) throw new SystemCallError("sendto", 36, "File name too long", path);
      const address = new Uint8Array(110); // struct sockaddr_un: sa_family_t, char sun_path[108]
      new DataView(address.buffer).setUint16(0, 1, /* AF_UNIX */ true);
      address.set(name, 2);
      if (path.startsWith("@")) address[2] = 0; // abstract: no NUL terminator, exact length
      const length = 2 + name.length + (path.startsWith("@") ? 0 : 1);
      const fd = check(f.socket(1, 2 /* SOCK_DGRAM */ | O.CLOEXEC, 0), "socket");
      try {
        check(f.sendto(fd, data, data.length, 0x4000, /* MSG_NOSIGNAL */ address, length), "sendto", path);
      } finally {
        f.close(fd);
      }
    },
  };
}

/** fcntl locks, umask, signal dispositions, socket options. */
function lockCalls({ f, raw, fail, check, retry, flock }: Kit): Partial<Libc> {
  return {
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
    lockWaiting(fd) {
      const lock = flock(F_WRLCK);
      retry(() => f.fcntl(fd, 7, /* F_SETLKW */ raw.address(lock)), "fcntl(F_SETLKW)");
    },
    umask: (mask) => Number(f.umask(mask)),
    isTerminal: (fd) => Number(f.isatty(fd)) === 1,
    accessible: (path, mode) => Number(f.access(cstr(path), mode === "write" ? 2 : 1)) === 0,
    resetSignal: (signal) => void f.signal(signal, 0),
    ignoreSignal: (signal) => void check(f.signal(signal, 1), "signal"),
    isListening(fd) {
      const value = new Int32Array(1), length = new Uint32Array([4]);
      const r = Number(
        f.getsockopt(
          fd,
          1, /* SOL_SOCKET */
          30, /* SO_ACCEPTCONN */
          new Uint8Array(value.buffer),
          new Uint8Array(length.buffer),
        ),
      );
      return r === 0 && value[0] === 1;
    },
  };
}

/** Process names, parent death, pidfds and reaping. */
function processCalls({ f, raw, fail, check, retry, procPidfds, pidfdOpen }: Kit): Partial<Libc> {
  return {
    setThreadName(name) {
      const bytes = cstr(name.slice(0, 15));
      check(f.prctl(PR_SET_NAME, raw.address(bytes), 0, 0, 0), "prctl(PR_SET_NAME)");
    },
    setParentDeathSignal: (signal) => void check(f.prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)"),
    setChildSubreaper: () => void check(f.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)"),
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
    reapAny() {
      const status = new Int32Array(1);
      const pid = Number(f.waitpid(-1, new Uint8Array(status.buffer), 1 /* WNOHANG */));
      const errno = pid === -1 ? raw.errno() : 0;
      if (errno !== 0 && errno !== 10 /* ECHILD */ && errno !== 4 /* EINTR */) fail("waitpid", undefined, errno);
      return pid > 0 ? { pid, status: status[0] } : null;
    },
  };
}

/**
 * Builds the {@linkcode Libc} from a runtime binding; `without` names calls to treat as missing (to test
 * their fallbacks).
 *
 * @example
 * ```ts
 * import { createLibc } from "./_libc.ts";
 * import { openLibc } from "./deno.ts";
 * const libc = createLibc(openLibc("libc.so.6"));
 * const [r, w] = libc.pipe();
 * libc.close(r);
 * libc.close(w);
 * ```
 */
export function createLibc(raw: RawLibc, without: readonly string[] = []): Libc {
  const kit = kitOf(raw, without);
  const libc = {
    ...fileCalls(kit),
    ...socketCalls(kit),
    ...lockCalls(kit),
    ...processCalls(kit),
    ...reuseportCalls(raw, kit.check, kit.has),
    ...sockDiagCalls(raw, kit.check),
    ...userCalls(kit),
    spawn: (options: SpawnOptions) => spawn(kit, options, libc),
  } as Libc;
  return libc;
}
