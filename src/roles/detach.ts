/**
 * The detach stage: the second fork where there is no `/bin/sh` (distroless images, a bare chroot). The
 * launcher then re-executes its own command as this short-lived process instead of a shell:
 *
 *   launcher ── posix_spawn(SETSID, SETSIGDEF, empty mask, fds 0-3) ──▶ detach (session leader)
 *   detach ── posix_spawn(SETSIGDEF, empty mask, fds 0-3) ──▶ daemon; detach reports `PID n` on fd 3, exits
 *
 * so the daemon is in the new session but not its leader, and is reparented to init, as the shell's
 * background job is. The daemon's stage follows this one on the same fd 3 socket (stage.ts reads no byte
 * past its own line), and the daemon reports on it to the launcher. It costs one more runtime start (about
 * 20 ms), so the launcher does it only without a shell.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { type Libc, libc as systemLibc } from "../../ffi/mod.ts";
import { encode } from "../channel.ts";
import { type DetachStage, STAGE_ENV, STAGE_FD } from "../stage.ts";

/**
 * Starts the daemon (the same command, its stage next on fd 3), reports its pid to the launcher and exits.
 *
 * @example
 * ```ts ignore
 * // ignore: it exits; the runner calls it in the process the launcher started (test/no_shell.test.ts)
 * import { detach } from "./detach.ts";
 * detach({ role: "detach", command: { path: "/usr/local/bin/app", args: ["--daemon"], cwd: "/" } });
 * ```
 */
export function detach(stage: DetachStage, libc: Libc = systemLibc): never {
  const { path, args } = stage.command;
  let report: string;
  try {
    const pid = libc.spawn({
      path,
      argv: [path, ...args],
      env: { ...host.environ, [STAGE_ENV]: String(STAGE_FD) },
      fds: [0, 1, 2, STAGE_FD],
    });
    report = encode({ kind: "PID", pid });
  } catch (err) {
    report = encode({
      kind: "ERROR",
      code: "START_FAILED",
      message: `Cannot start: cannot run ${path} again: ${(err as Error).message}`,
    });
  }
  libc.write(STAGE_FD, new TextEncoder().encode(report));
  host.exit(0);
}
