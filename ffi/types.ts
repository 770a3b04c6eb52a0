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
  socketpair: { args: ["i32", "i32", "i32", "buf"], returns: "i32" },
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
