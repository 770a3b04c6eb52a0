/**
 * What a start reads before anything starts, so a missing input fails first (exit 66) leaving nothing
 * behind: the `--chdir` directory and the `--env-file`s. Called by the roles that start a daemon (launcher,
 * foreground, unit installer); the parser stays pure.
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { readEnvFiles } from "./env_file.ts";
import { DaemonError } from "./errors.ts";

/**
 * Throws a {@linkcode DaemonError} `NO_INPUT` when `chdir` is not a directory or an env file cannot be used.
 *
 * @example
 * ```ts
 * import { checkStartInputs } from "./start_inputs.ts";
 * checkStartInputs({ chdir: "/", envFiles: [] }); // fine: / is a directory, no env file to read
 * ```
 */
export function checkStartInputs(settings: { chdir: string; envFiles: readonly string[] }): void {
  let directory = false;
  try {
    directory = host.stat(settings.chdir).isDirectory;
  } catch {
    // Missing, a loop, not reachable: not a directory to change to.
  }
  if (!directory) {
    throw new DaemonError(
      "NO_INPUT",
      `Invalid --chdir '${settings.chdir}': it is not a directory: create it or pick another`,
    );
  }
  readEnvFiles(settings.envFiles);
}
