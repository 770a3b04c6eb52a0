/**
 * Remembered options: a control action (`--stop`, `--status`, `--restart`, …) finds its daemon in the
 * registry even without the `--pid-file` it was started with; `--restart` starts it again with the settings
 * and the environment it was started with (registry.ts keeps them), replacing only the flags given this
 * time (and the environment with `--update-env`); `--stop` without `--timeout` waits the daemon's own.
 *
 * @module
 */
import { resolvePath } from "../../ffi/_host.ts";
import { cpuWorkers } from "../cgroup.ts";
import { DaemonError } from "../errors.ts";
import { formatValue, OPTIONS, type RunnerOptions } from "./option_table.ts";
import { checkRules } from "./options.ts";
import { findRegistered, listRegistered, type RegistryEntry } from "../registry.ts";

const CONTROL = new Set(["stop", "status", "restart", "reload", "upgrade", "reopen-logs", "hold-logs", "logs"]);

/** The running daemon `opts` means: the one holding its pid file, else the only one registered under its
 * name (no `--pid-file` given) or at a path ending in the relative `--pid-file` given. */
function entryFor(opts: RunnerOptions): RegistryEntry | null {
  const found = findRegistered(opts.pidFile);
  if (found) return found;
  const given = opts.given.get("pid-file") as string | undefined;
  if (given?.startsWith("/")) return null;
  const suffix = given ? resolvePath("/", given) : undefined; // "./run/a.pid" ends "/run/a.pid"
  const matches = listRegistered().filter((e) => suffix ? e.pidFile.endsWith(suffix) : e.name === opts.name);
  if (matches.length > 1) {
    const where = matches.map((e) => e.pidFile).join(", ");
    throw new DaemonError(
      "USAGE",
      `Several daemons match ${
        given ? `--pid-file ${given}` : `the name ${opts.name}`
      } (${where}): pick one with --pid-file`,
    );
  }
  return matches[0] ?? null;
}

/** `opts` over the settings `entry` remembers: a remembered option keeps its value unless given now
 * (`--` replaces the entry's arguments); the environment is the remembered one unless `--update-env`. */
export function mergeRemembered(
  opts: RunnerOptions,
  entry: Pick<RegistryEntry, "settings" | "env" | "pidFile">,
): RunnerOptions {
  const merged: RunnerOptions = { ...opts, pidFile: entry.pidFile };
  // Given now by any of its flags (--keep-alive and --no-keep-alive set one key): the value given wins.
  const givenKey = (key: string) => OPTIONS.some((o) => o.key === key && opts.given.has(o.name));
  for (const row of OPTIONS) {
    if (row.setting && row.key !== "pidFile" && !givenKey(row.key) && entry.settings && row.key in entry.settings) {
      Object.assign(merged, { [row.key]: entry.settings[row.key as keyof typeof entry.settings] });
    }
  }
  if (!opts.given.has("--") && entry.settings) merged.args = entry.settings.args;
  // How auto and a percentage were decided goes with the flag: a remembered auto is decided again here.
  if (!opts.given.has("workers") && entry.settings?.workersAuto) {
    ({ value: merged.workers, how: merged.workersAuto } = cpuWorkers());
  }
  if (!opts.given.has("max-memory")) merged.maxMemoryShare = entry.settings?.maxMemoryShare;
  if (!opts.updateEnv && entry.env) merged.env = entry.env;
  return merged;
}

/**
 * `opts` completed from the registry: for a control action, the pid file of the daemon it means; for
 * `--restart`, that daemon's remembered settings with the flags given now over them. Other actions, and a
 * daemon not found, are left as they are.
 *
 * @example
 * ```ts
 * import { parseRunnerArgs } from "./options.ts";
 * import { remembered } from "./remembered.ts";
 * const opts = parseRunnerArgs(["--status", "--pid-file", "/nonexistent/app.pid"], { name: "app" });
 * console.log(remembered(opts).pidFile); // /nonexistent/app.pid: nothing registered there
 * ```
 */
export function remembered(opts: RunnerOptions): RunnerOptions {
  if (!CONTROL.has(opts.action)) return opts;
  const entry = entryFor(opts);
  if (!entry) return opts;
  if (opts.action === "restart" && entry.settings) {
    const merged = mergeRemembered(opts, entry);
    checkRules(merged);
    return merged;
  }
  if (entry.settings) refuseOtherSettings(opts, entry.settings);
  const timeout = !opts.given.has("timeout") && entry.settings ? entry.settings.timeout : opts.timeout;
  return { ...opts, pidFile: entry.pidFile, name: entry.name, timeout };
}

/** What a control action uses of the daemon's own flags: to find it, `--stop`'s wait, the log actions' file. */
const USED_BY_CONTROL = new Set(["pidFile", "name", "timeout", "logFile"]);

/**
 * A control action takes the daemon's own flags (one set of flags in a script serves its start and its
 * `--status`), but applies none of them to the running daemon: one that differs from what it runs with is
 * refused (`--upgrade --workers 3` of a daemon of 2), never accepted and ignored.
 */
function refuseOtherSettings(opts: RunnerOptions, settings: NonNullable<RegistryEntry["settings"]>): void {
  for (const row of OPTIONS) {
    if (!row.setting || USED_BY_CONTROL.has(row.key) || !opts.given.has(row.name)) continue;
    const running = settings[row.key as keyof typeof settings], given = opts[row.key];
    if (JSON.stringify(running) === JSON.stringify(given)) continue;
    const flag = typeof running === "boolean" ? (row.negates ? !running : running) : running !== undefined;
    const now = !flag
      ? `no --${row.name}`
      : row.arg
      ? `--${row.name} ${formatValue(row, running, settings)}`
      : `--${row.name}`;
    throw new DaemonError(
      "USAGE",
      `Invalid --${row.name} with --${opts.action}: the daemon runs ${
        flag ? "with " : ""
      }${now}, and --${opts.action} changes no ` +
        `setting: use --restart --${row.name} … to start it again with it`,
    );
  }
}
