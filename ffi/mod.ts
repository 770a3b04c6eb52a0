/**
 * The one `Libc` for the running runtime, opened once. Nothing outside `ffi/` touches a runtime's FFI.
 *
 * @example
 * ```ts ignore
 * import { libc } from "./ffi/mod.ts";
 * const old = libc.umask(0o022);
 * ```
 *
 * @module
 */
import process from "node:process";
import { createLibc, type Libc } from "./_libc.ts";
import type { RawLibc } from "./types.ts";

export { type ChildFd, type Libc, O, type SpawnOptions } from "./_libc.ts";
export { SystemCallError } from "./errors.ts";

const LIBC_PATH = "libc.so.6";

async function load(): Promise<RawLibc> {
  const binding = "Bun" in globalThis ? await import("./bun.ts") : await import("./deno.ts");
  try {
    return binding.openLibc(LIBC_PATH);
  } catch (cause) {
    // Fails at first use, not at import: `daemonic build --target linux-…` runs on a Mac or a musl system too.
    const error = new Error(
      `Cannot load ${LIBC_PATH}: ${(cause as Error).message}: daemonic needs Linux with glibc 2.17 or newer`,
      { cause },
    );
    const fail = (): never => {
      throw error;
    };
    return { fn: new Proxy({}, { get: fail }) as RawLibc["fn"], address: fail, errno: fail, strerror: fail };
  }
}

/** Names of calls to treat as missing (comma-separated), to exercise their fallbacks on a new system. */
export const WITHOUT_ENV = "DAEMONIC_FFI_WITHOUT";

/** The process's libc, bound through the runtime's FFI. */
export const libc: Libc = createLibc(await load(), (process.env[WITHOUT_ENV] ?? "").split(",").filter(Boolean));
