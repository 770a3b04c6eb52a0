/**
 * The libc binding for Bun (`bun:ffi`). Only this file and `ffi/deno.ts` touch a runtime's FFI.
 *
 * @module
 */
import type * as BunFFI from "bun:ffi";
import { MissingLibcError } from "./errors.ts";
import { type AbstractType, type RawLibc, SYMBOLS } from "./types.ts";

type FFIType = BunFFI.FFIType;
const TYPES: Record<AbstractType, keyof typeof BunFFI.FFIType> = {
  i32: "i32",
  i64: "i64",
  u32: "u32",
  buf: "ptr",
  void: "void",
};

/**
 * Opens libc with {@linkcode SYMBOLS} through `bun:ffi`.
 *
 * @example
 * ```ts ignore
 * // ignore: bun:ffi exists only under Bun
 * import { openLibc } from "./bun.ts";
 * const raw = openLibc("libc.so.6");
 * raw.fn.umask(0o022);
 * ```
 */
export function openLibc(path: string): RawLibc {
  // Required here, synchronously and only under Bun, so importing this file costs nothing elsewhere.
  const { CString, dlopen, FFIType, ptr, read } = (import.meta as unknown as { require(id: string): typeof BunFFI })
    .require("bun:ffi");
  // Each symbol is bound (its trampoline compiled) on first use: binding all of them took ~3 ms of every
  // start-up, in the launcher and again in the daemon, though each uses only some. errno is read through
  // __errno_location right after a failed call, so that one is bound up front: a lazy dlopen in between
  // could change errno.
  const libs: { symbols: unknown }[] = [];
  const bind = (table: Record<string, { args: FFIType[]; returns: FFIType }>) => {
    let lib;
    try {
      lib = dlopen(path, table);
    } catch (cause) {
      throw new MissingLibcError(`${Object.keys(table).join(", ")} in ${path}`, cause);
    }
    libs.push(lib); // keep every handle open for the life of the process
    return lib.symbols as unknown as Record<string, (...args: unknown[]) => unknown>;
  };
  const { __errno_location } = bind({ __errno_location: { args: [], returns: FFIType.ptr } });
  // A Proxy, not a getter per symbol: defining ~45 getters up front cost 0.3 ms of every process's start.
  const lazy = (specs: Record<string, { args: readonly AbstractType[]; returns: AbstractType }>) =>
    new Proxy({} as Record<string, unknown>, {
      get(bound, name) {
        const spec = typeof name === "string" && Object.hasOwn(specs, name) ? specs[name] : undefined;
        if (!spec || name in bound) return bound[name as string];
        const table = {
          [name]: { args: spec.args.map((t) => FFIType[TYPES[t]]), returns: FFIType[TYPES[spec.returns]] },
        };
        return bound[name as string] = bind(table)[name as string];
      },
      has: (_, name) => typeof name === "string" && Object.hasOwn(specs, name),
    });
  const fn = lazy(SYMBOLS);
  const extra = lazy({ strerror: { args: ["i32"], returns: "buf" } });
  return {
    fn: fn as unknown as RawLibc["fn"],
    address: (buffer) => BigInt(ptr(buffer)),
    errno: () => read.i32(__errno_location() as never),
    strerror: (code) => new CString((extra.strerror as (c: number) => unknown)(code) as never).toString(),
  };
}
