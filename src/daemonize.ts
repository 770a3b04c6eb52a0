/**
 * Daemonizing from a script's own code, go-daemon style (`daemonize()`), for scripts that do not go through
 * `daemonic build` or `daemonic run`: the launcher and the daemon are the same script, told apart by the
 * stage the launcher hands over.
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { ExitCode, userPathError } from "./errors.ts";
import { serveDaemon } from "./roles/daemon.ts";
import { detach } from "./roles/detach.ts";
import { launch } from "./roles/launcher.ts";
import { type DaemonOptions, takeStage, withDefaults } from "./stage.ts";

export type { DaemonOptions } from "./stage.ts";
export { launch } from "./roles/launcher.ts";

/**
 * Daemonizes the calling script. In the launcher it starts the script again as a daemon, waits until that is
 * ready, prints its pid and exits (0, or the error's exit code with its message). In the daemon it returns,
 * with stdio on the log file, the pid file locked and SIGTERM/SIGHUP handled; the script goes on and counts
 * as ready when it listens on a socket or calls `ready()`.
 *
 * @example
 * ```ts ignore
 * // ignore: it starts a daemon (the test suite does: test/daemon.test.ts, fixture self-daemonize.ts)
 * import { daemonize } from "daemonic";
 * await daemonize({ pidFile: "/tmp/app.pid", logFile: "/tmp/app.log" });
 * Bun.serve({ port: 8080, fetch: () => new Response("hi") });
 * ```
 */
export async function daemonize(options: DaemonOptions): Promise<void> {
  const stage = takeStage();
  if (stage?.role === "daemon") return await serveDaemon(stage, { load: () => Promise.resolve() });
  if (stage?.role === "detach") detach(stage); // the second fork where there is no /bin/sh: exits
  try {
    console.log(await launch(withDefaults(options)));
    host.exit(0);
  } catch (err) {
    const known = userPathError(err); // a missing program or libc function too: one line, exit 72
    host.writeStderr(`${(known ?? err as Error).message}\n`); // synchronous: a pipe write must not be lost to the exit
    host.exit(known?.exitCode ?? ExitCode.SOFTWARE);
  }
}
