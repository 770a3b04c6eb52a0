/**
 * The one `Libc` for the running runtime, opened on first use: importing daemonic (say, only for
 * `onShutdown`) loads no FFI, so an entry still runs without `--allow-ffi` outside the runner.
 * Nothing outside `ffi/` touches a runtime's FFI.
 *
 * @example
 * ```ts
 * import { libc } from "./mod.ts";
 * const [r, w] = libc.pipe(); // libc is bound on this first call
 * libc.close(r);
 * libc.close(w);
 * ```
 *
 * @module
 */
import { host } from "./_host.ts";
import { createLibc, type Libc } from "./_libc.ts";
import { MissingLibcError } from "./errors.ts";
import { openLibc as openWithBun } from "./bun.ts";
import { openLibc as openWithDeno } from "./deno.ts";

export { type ChildFd, type Libc, O, type SpawnOptions } from "./_libc.ts";
export { MissingLibcError, SystemCallError } from "./errors.ts";

const LIBC_PATH = "libc.so.6";

let opened: Libc | undefined;

function open(): Libc {
  if (opened) return opened;
  try {
    const raw = "Bun" in globalThis ? openWithBun(LIBC_PATH) : openWithDeno(LIBC_PATH);
    opened = createLibc(raw, (host.env(WITHOUT_ENV) ?? "").split(",").filter(Boolean));
  } catch (cause) {
    throw cause instanceof MissingLibcError ? cause : new MissingLibcError(LIBC_PATH, cause);
  }
  return opened;
}

/** Names of calls to treat as missing (comma-separated), to exercise their fallbacks on a new system. */
export const WITHOUT_ENV = "DAEMONIC_FFI_WITHOUT";

/** The process's libc, bound through the runtime's FFI the first time one of its calls is made. */
export const libc: Libc = new Proxy({} as Libc, { get: (_, call) => open()[call as keyof Libc] });
