/**
 * The programs daemonic runs when a system has them, and does without otherwise: `/bin/sh` (the second fork
 * of `--daemon`, see roles/detach.ts) and `tail` (`--logs`, see log/tail.ts). Distroless images and bare
 * chroots have neither. `DAEMONIC_WITHOUT=sh,tail` treats them as missing, to try the other way here.
 *
 * @module
 */
import { baseName, host } from "../ffi/_host.ts";
import { libc } from "../ffi/mod.ts";

/** Names of programs to treat as missing (comma-separated base names), to test what runs without them. */
export const WITHOUT_ENV = "DAEMONIC_WITHOUT";

/**
 * The path of the executable `name` (absolute, or looked up on `PATH`), or `undefined` when there is none
 * or {@linkcode WITHOUT_ENV} names it.
 *
 * @example
 * ```ts
 * import { findProgram } from "./programs.ts";
 * console.log(findProgram("/nonexistent/sh")); // undefined
 * console.log(findProgram("sh", { PATH: "/bin", DAEMONIC_WITHOUT: "sh" })); // undefined
 * ```
 */
export function findProgram(name: string, env: Record<string, string | undefined> = host.environ): string | undefined {
  if ((env[WITHOUT_ENV] ?? "").split(",").includes(baseName(name))) return undefined;
  const candidates = name.includes("/")
    ? [name]
    : (env.PATH ?? "/usr/bin:/bin").split(":").filter(Boolean).map((dir) => `${dir}/${name}`);
  return candidates.find((path) => {
    try {
      return libc.accessible(path, "execute") && host.stat(path).isFile;
    } catch {
      return false;
    }
  });
}
