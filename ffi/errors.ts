/**
 * errno turned into a typed error.
 *
 * @module
 */

const NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  17: "EEXIST",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  24: "EMFILE",
  28: "ENOSPC",
  30: "EROFS",
  38: "ENOSYS",
  40: "ELOOP",
  98: "EADDRINUSE",
  104: "ECONNRESET",
};

/**
 * A libc call failed. `code` is the errno name (`"ENOENT"`), `errno` its number, `syscall` the call.
 *
 * @example Catching a specific errno
 * ```ts
 * import { SystemCallError } from "./errors.ts";
 * const err = new SystemCallError("open", 2, "No such file or directory", "/run/x.pid");
 * console.log(err.code, err.message); // ENOENT open /run/x.pid: No such file or directory (ENOENT)
 * ```
 */
const ERROR_BRAND = Symbol.for("daemonic.error");

/**
 * An error class `instanceof` recognises from any copy of daemonic in the process (the npm package's bundled
 * command beside the files tsc wrote, an entry's own daemonic): it tests a brand, the class's `brand`, not the
 * class object.
 */
export class BrandedError extends Error {
  static readonly brand: string = "BrandedError";
  readonly [ERROR_BRAND] = (this.constructor as typeof BrandedError).brand;
  static [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as BrandedError)[ERROR_BRAND] === this.brand;
  }
}

export class SystemCallError extends BrandedError {
  static override readonly brand = "SystemCallError";
  /** The errno name, e.g. `"EACCES"` (`"E<number>"` for rare ones). */
  readonly code: string;
  constructor(
    /** The libc function that failed. */
    readonly syscall: string,
    /** The errno value. */
    readonly errno: number,
    description: string,
    /** The path the call was about, when there is one. */
    readonly path?: string,
  ) {
    const code = NAMES[errno] ?? `E${errno}`;
    super(`${syscall}${path ? ` ${path}` : ""}: ${description} (${code})`);
    this.name = "SystemCallError";
    this.code = code;
  }
}

/**
 * libc, or a function daemonic needs in it, cannot be bound: the system is not glibc 2.17 or newer.
 *
 * @example
 * ```ts
 * import { MissingLibcError } from "./errors.ts";
 * const err = new MissingLibcError("posix_spawn in libc.so.6", new Error("undefined symbol"));
 * console.log(err.message); // posix_spawn in libc.so.6 is missing: undefined symbol
 * ```
 */
export class MissingLibcError extends BrandedError {
  static override readonly brand = "MissingLibcError";
  constructor(
    /** What is missing: the library, or a function in it. */
    readonly what: string,
    cause: unknown,
  ) {
    super(`${what} is missing: ${(cause as Error)?.message ?? cause}`, { cause });
    this.name = "MissingLibcError";
  }
}
