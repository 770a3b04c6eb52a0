/**
 * The libc surface daemonic needs, described once for both runtimes.
 *
 * `SYMBOLS` is the single symbol table: `ffi/bun.ts` and `ffi/deno.ts` translate its abstract types into
 * their runtime's FFI type names, so the two bindings cannot drift apart.
 *
 * @module
 */

/** Abstract FFI types: `buf` is a `Uint8Array`-like buffer (or `null`), passed as a pointer. */
export type AbstractType = "i32" | "i64" | "u32" | "buf" | "void";

/** One foreign function: its parameters and result, in abstract types. */
export interface SymbolSpec {
  readonly args: readonly AbstractType[];
  readonly returns: AbstractType;
}

/** Every libc function daemonic calls; all are in glibc 2.17 except the two marked optional. Variadic ones
 * (`open`, `openat`, `fcntl`, `prctl`, `syscall`) are called with integer arguments only (a pointer goes as
 * its address), which the x86-64 and AArch64 Linux ABIs pass like fixed ones. */
export const SYMBOLS = {
  open: { args: ["buf", "i32", "u32"], returns: "i32" },
  openat: { args: ["i32", "buf", "i32", "u32"], returns: "i32" },
  chdir: { args: ["buf"], returns: "i32" },
  fchdir: { args: ["i32"], returns: "i32" },
  kill: { args: ["i32", "i32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  read: { args: ["i32", "buf", "i64"], returns: "i64" },
  write: { args: ["i32", "buf", "i64"], returns: "i64" },
  pipe2: { args: ["buf", "i32"], returns: "i32" },
  poll: { args: ["buf", "i64", "i32"], returns: "i32" },
  dup2: { args: ["i32", "i32"], returns: "i32" },
  fcntl: { args: ["i32", "i32", "i64"], returns: "i32" },
  ftruncate: { args: ["i32", "i64"], returns: "i32" },
  umask: { args: ["u32"], returns: "u32" },
  access: { args: ["buf", "i32"], returns: "i32" },
  isatty: { args: ["i32"], returns: "i32" },
  signal: { args: ["i32", "i64"], returns: "i64" },
  getsockopt: { args: ["i32", "i32", "i32", "buf", "buf"], returns: "i32" },
  prctl: { args: ["i32", "i64", "i64", "i64", "i64"], returns: "i32" },
  syscall: { args: ["i64", "i64", "i64", "i64", "i64"], returns: "i64" },
  waitpid: { args: ["i32", "buf", "i32"], returns: "i32" },
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  sendto: { args: ["i32", "buf", "i64", "i32", "buf", "u32"], returns: "i64" },
  posix_spawn: { args: ["buf", "buf", "buf", "buf", "buf", "buf"], returns: "i32" },
  posix_spawn_file_actions_init: { args: ["buf"], returns: "i32" },
  posix_spawn_file_actions_destroy: { args: ["buf"], returns: "i32" },
  posix_spawn_file_actions_adddup2: { args: ["buf", "i32", "i32"], returns: "i32" },
  posix_spawn_file_actions_addopen: { args: ["buf", "i32", "buf", "i32", "u32"], returns: "i32" },
  posix_spawn_file_actions_addclose: { args: ["buf", "i32"], returns: "i32" },
  // glibc 2.34 and 2.29: optional, resolved on first use; ffi/_fallback.ts stands in where they are missing.
  posix_spawn_file_actions_addclosefrom_np: { args: ["buf", "i32"], returns: "i32" },
  posix_spawn_file_actions_addchdir_np: { args: ["buf", "buf"], returns: "i32" },
  posix_spawnattr_init: { args: ["buf"], returns: "i32" },
  posix_spawnattr_destroy: { args: ["buf"], returns: "i32" },
  posix_spawnattr_setflags: { args: ["buf", "i32"], returns: "i32" },
  posix_spawnattr_setsigdefault: { args: ["buf", "buf"], returns: "i32" },
  posix_spawnattr_setsigmask: { args: ["buf", "buf"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "buf", "u32"], returns: "i32" },
  shutdown: { args: ["i32", "i32"], returns: "i32" },
  socketpair: { args: ["i32", "i32", "i32", "buf"], returns: "i32" },
  recv: { args: ["i32", "buf", "i64", "i32"], returns: "i64" },
  getpwnam_r: { args: ["buf", "buf", "buf", "i64", "buf"], returns: "i32" },
  getgrnam_r: { args: ["buf", "buf", "buf", "i64", "buf"], returns: "i32" },
  initgroups: { args: ["buf", "u32"], returns: "i32" },
  setresgid: { args: ["u32", "u32", "u32"], returns: "i32" },
  setresuid: { args: ["u32", "u32", "u32"], returns: "i32" },
  capset: { args: ["buf", "buf"], returns: "i32" },
} as const satisfies Record<string, SymbolSpec>;

/** The names in {@linkcode SYMBOLS}. */
export type SymbolName = keyof typeof SYMBOLS;

/** A pointer-sized argument: a buffer the callee reads or fills, or `null` for NULL. */
export type Buf = Uint8Array | null;

/** What each runtime binding provides: the raw functions of {@linkcode SYMBOLS} plus the three things that
 * differ between runtimes (a buffer's address, errno, strerror). */
export interface RawLibc {
  /** The foreign functions; integers come back as `number` (64-bit results may be `bigint`). */
  readonly fn: { readonly [K in SymbolName]: (...args: (number | bigint | Buf)[]) => number | bigint };
  /** The address of a buffer's first byte, to build `char *[]` arrays. */
  address(buffer: Uint8Array): bigint;
  /** The calling thread's `errno`, read right after a failed call. */
  errno(): number;
  /** `strerror(code)`. */
  strerror(code: number): string;
}

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

/** The reuseport part of `Libc`. */
export interface ReuseportCalls {
  /** bpf(BPF_PROG_LOAD) of a socket program (`instructions`: `struct bpf_insn[]`); returns its fd (close-on-exec). */
  bpfProgramLoad(
    program: { type: number; expectedAttachType: number; instructions: Uint8Array; license: string },
  ): number;
  /** setsockopt(SO_ATTACH_REUSEPORT_EBPF): `program` selects (and migrates) for `socket`'s whole reuseport group. */
  attachReuseportProgram(socket: number, program: number): void;
  /** shutdown(SHUT_RD) of a listening socket, so it stops listening (its queue goes to the reuseport group),
   * and an unbound socket in its place, so the runtime's event loop forgets it until its server closes it. */
  stopListening(socket: number): void;
}

/** A listening TCP socket: its local address (4 or 16 bytes, network order), port and inode. */
export interface TcpListener {
  address: Uint8Array;
  port: number;
  inode: number;
}

/** The sock_diag part of `Libc`. */
export interface SockDiagCalls {
  /** Every listening TCP socket (IPv4 and IPv6) in this network namespace. */
  tcpListeners(): TcpListener[];
}

/** What stands in for pidfds where the kernel has none (ffi/_fallback.ts: fds of /proc/PID). */
export interface PidfdStandIns {
  open(pid: number): number;
  has(fd: number): boolean;
  forget(fd: number): void;
  exited(fd: number): boolean;
  signal(fd: number, signal: number): void;
  waitExited(fd: number, timeoutMs: number): boolean;
}

/** What each group of libc calls is built from (ffi/_libc.ts makes it from the runtime binding). */
export interface Kit {
  f: RawLibc["fn"];
  raw: RawLibc;
  fail: (syscall: string, path?: string, errno?: number) => never;
  check: (result: number | bigint, syscall: string, path?: string) => number;
  retry: (call: () => number | bigint, syscall: string) => number;
  flock: (type: number) => Uint8Array;
  has: ((name: string) => boolean) & { missing(name: string): void };
  procPidfds: PidfdStandIns;
  pidfdOpen: (pid: number) => number;
  cArray: (strings: readonly string[], keep: Uint8Array[]) => Uint8Array;
}

/** The libc calls daemonic makes, with errors thrown as {@linkcode SystemCallError}. */
export interface Libc extends ReuseportCalls, SockDiagCalls {
  /** open(2); returns the fd. */
  open(path: string, flags: number, mode?: number): number;
  /** close(2). */
  close(fd: number): void;
  /** read(2) of up to `size` bytes; an empty array means end of file (or a socket reset by its peer). */
  read(fd: number, size: number): Uint8Array;
  /** recv(2) with MSG_PEEK: up to `size` bytes of a socket, left there for the next read. */
  peek(fd: number, size: number): Uint8Array;
  /** write(2) of all of `data`. */
  write(fd: number, data: Uint8Array): void;
  /** pipe2(2) with O_CLOEXEC: `[readEnd, writeEnd]`. */
  pipe(): [number, number];
  /** fcntl(F_SETPIPE_SZ): a pipe's buffer, so a writer blocks later while its reader is busy. */
  setPipeSize(fd: number, bytes: number): void;
  /** poll(2) for input on one fd; `true` when readable (or hung up), `false` on timeout. */
  waitReadable(fd: number, timeoutMs: number): boolean;
  /** fcntl(F_DUPFD_CLOEXEC): another descriptor (10 or above) of what `fd` is. */
  duplicate(fd: number): number;
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
  /** access(2) with W_OK or X_OK, for the real uid: whether this process may write or execute `path`. */
  accessible(path: string, mode: "write" | "execute"): boolean;
  /** isatty(3). */
  isTerminal(fd: number): boolean;
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
  /** getpwnam_r(3) (NSS: files, LDAP, systemd-userdb…): the user's uid and primary gid, `null` when unknown. */
  lookupUser(name: string): { uid: number; gid: number } | null;
  /** getgrnam_r(3): the group's gid, `null` when unknown. */
  lookupGroup(name: string): number | null;
  /** prctl(PR_SET_KEEPCAPS): keep the permitted capabilities across the switch from uid 0 to another uid. */
  setKeepCapabilities(keep: boolean): void;
  /** initgroups(3): the supplementary groups of `user` (NSS), plus `gid`; every thread. */
  initGroups(user: string, gid: number): void;
  /** setresgid(2) of real, effective and saved gid; every thread (glibc's setxid). */
  setGid(gid: number): void;
  /** setresuid(2) of real, effective and saved uid; every thread (glibc's setxid). */
  setUid(uid: number): void;
  /** capset(2) of this thread to exactly `caps` (permitted, effective, inheritable), then each raised ambient
   * (prctl PR_CAP_AMBIENT_RAISE), so the programs it starts keep them too. */
  keepCapabilities(caps: readonly number[]): void;
  /** prctl(PR_SET_DUMPABLE): whether processes of our uid (with our capabilities) may read our /proc/PID/fd;
   * the kernel clears it on a uid change. */
  setDumpable(on: boolean): void;
}
