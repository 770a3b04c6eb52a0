/**
 * The libc binding for Deno (`Deno.dlopen`). Only this file and `ffi/bun.ts` touch a runtime's FFI.
 *
 * @module
 */
import { MissingLibcError } from "./errors.ts";
import { type AbstractType, type RawLibc, SYMBOLS } from "./types.ts";

// A buffer goes as a pointer: binding a symbol with "buffer" parameters took 1.6 ms against 0.4 (Deno 2.9's
// trampolines), and every process binds 5 to 26 of them before its entry runs.
const TYPES: Record<AbstractType, Deno.NativeType | "void"> = {
  i32: "i32",
  i64: "i64",
  u32: "u32",
  buf: "pointer",
  void: "void",
};

type Call = (...args: unknown[]) => unknown;

/** `call` taking each buffer argument (at `buffers`) as the pointer to its bytes. */
function passingPointers(call: Call, buffers: number[]): Call {
  if (buffers.length === 0) return call;
  return (...args) => {
    for (const i of buffers) {
      const bytes = args[i] as Uint8Array<ArrayBuffer> | null;
      if (bytes === null) continue;
      void bytes.buffer; // a small array lives in V8's heap, which may move it: .buffer puts it outside for good
      args[i] = Deno.UnsafePointer.of(bytes);
    }
    return call(...args);
  };
}

/**
 * Opens libc with {@linkcode SYMBOLS} through `Deno.dlopen`.
 *
 * @example
 * ```ts
 * import { openLibc } from "./deno.ts";
 * const raw = openLibc("libc.so.6");
 * const old = raw.fn.umask(0o022); // each symbol is bound on its first call
 * raw.fn.umask(old);
 * ```
 */
export function openLibc(path: string): RawLibc {
  // Each symbol is bound on first use: Deno.dlopen of the whole table took 11-17 ms of every start-up (the
  // launcher and the daemon each pay it), though each process calls only some. __errno_location is bound up
  // front: a lazy dlopen between a failed call and the errno read could change errno.
  const libs: Deno.DynamicLibrary<Record<string, Deno.ForeignFunction>>[] = [];
  const bind = (table: Record<string, Deno.ForeignFunction>) => {
    let lib;
    try {
      lib = Deno.dlopen(path, table);
    } catch (cause) {
      throw new MissingLibcError(`${Object.keys(table).join(", ")} in ${path}`, cause);
    }
    libs.push(lib); // keep every handle open for the life of the process
    return lib.symbols as unknown as Record<string, (...args: unknown[]) => unknown>;
  };
  const { __errno_location } = bind({ __errno_location: { parameters: [], result: "pointer" } });
  const lazy = (name: string, spec: Deno.ForeignFunction, target: Record<string, unknown>, buffers: number[] = []) => {
    Object.defineProperty(target, name, {
      configurable: true,
      enumerable: true,
      get() {
        const fn = passingPointers(bind({ [name]: spec })[name], buffers);
        Object.defineProperty(target, name, { value: fn, enumerable: true });
        return fn;
      },
    });
  };
  const fn: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(SYMBOLS)) {
    lazy(
      name,
      {
        parameters: spec.args.map((t) => TYPES[t] as Deno.NativeType),
        result: TYPES[spec.returns] as Deno.NativeResultType,
      },
      fn,
      spec.args.flatMap((t, i) => t === "buf" ? [i] : []),
    );
  }
  const extra: Record<string, unknown> = {};
  lazy("strerror", { parameters: ["i32"], result: "pointer" }, extra);
  return {
    fn: fn as unknown as RawLibc["fn"],
    address: (buffer) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer as Uint8Array<ArrayBuffer>))),
    errno: () => new Deno.UnsafePointerView(__errno_location() as Deno.PointerObject).getInt32(),
    strerror: (code) =>
      Deno.UnsafePointerView.getCString((extra.strerror as (c: number) => unknown)(code) as Deno.PointerObject),
  };
}
