/**
 * The libc binding for Deno (`Deno.dlopen`). Only this file and `ffi/bun.ts` touch a runtime's FFI.
 *
 * @module
 */
import { type AbstractType, type RawLibc, SYMBOLS } from "./types.ts";

const TYPES: Record<AbstractType, Deno.NativeType | "void"> = {
  i32: "i32",
  i64: "i64",
  u32: "u32",
  buf: "buffer",
  void: "void",
};

/**
 * Opens libc with {@linkcode SYMBOLS} through `Deno.dlopen`.
 *
 * @example
 * ```ts ignore
 * const raw = openLibc("libc.so.6");
 * raw.fn.umask(0o022);
 * ```
 */
export function openLibc(path: string): RawLibc {
  const table: Record<string, Deno.ForeignFunction> = {};
  for (const [name, spec] of Object.entries(SYMBOLS)) {
    table[name] = {
      parameters: spec.args.map((t) => TYPES[t] as Deno.NativeType),
      result: TYPES[spec.returns] as Deno.NativeResultType,
    };
  }
  table.__errno_location = { parameters: [], result: "pointer" };
  table.strerror = { parameters: ["i32"], result: "pointer" };
  const lib = Deno.dlopen(path, table);
  const symbols = lib.symbols as unknown as Record<string, (...args: unknown[]) => unknown>;
  return {
    fn: symbols as unknown as RawLibc["fn"],
    address: (buffer) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer as Uint8Array<ArrayBuffer>))),
    errno: () => new Deno.UnsafePointerView(symbols.__errno_location() as Deno.PointerObject).getInt32(),
    strerror: (code) => Deno.UnsafePointerView.getCString(symbols.strerror(code) as Deno.PointerObject),
  };
}
