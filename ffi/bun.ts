/**
 * The libc binding for Bun (`bun:ffi`). Only this file and `ffi/deno.ts` touch a runtime's FFI.
 *
 * @module
 */
import { CString, dlopen, FFIType, ptr, read } from "bun:ffi";
import { type AbstractType, type RawLibc, SYMBOLS } from "./types.ts";

const TYPES: Record<AbstractType, FFIType> = {
  i32: FFIType.i32,
  i64: FFIType.i64,
  u32: FFIType.u32,
  buf: FFIType.ptr,
  void: FFIType.void,
};

/**
 * Opens libc with {@linkcode SYMBOLS} through `bun:ffi`.
 *
 * @example
 * ```ts ignore
 * const raw = openLibc("libc.so.6");
 * raw.fn.umask(0o022);
 * ```
 */
export function openLibc(path: string): RawLibc {
  const table = Object.fromEntries(
    Object.entries(SYMBOLS).map(([name, spec]) => [name, { args: spec.args.map((t) => TYPES[t]), returns: TYPES[spec.returns] }]),
  );
  const extra = {
    __errno_location: { args: [], returns: FFIType.ptr },
    strerror: { args: [FFIType.i32], returns: FFIType.ptr },
  } as const;
  const lib = dlopen(path, { ...table, ...extra });
  const symbols = lib.symbols as unknown as Record<string, (...args: unknown[]) => unknown>;
  return {
    fn: symbols as unknown as RawLibc["fn"],
    address: (buffer) => BigInt(ptr(buffer)),
    errno: () => read.i32(symbols.__errno_location() as never),
    strerror: (code) => new CString(symbols.strerror(code) as never).toString(),
  };
}
