/**
 * Remembered options: a control action (`--stop`, `--status`, `--restart`, …) finds its daemon in the
 * registry even without the `--pid-file` it was started with, and `--restart` starts it again with the
 * settings it was started with (registry.ts keeps them), replacing only the flags given this time.
 *
 * @module
 */
import { isAbsolute, normalize } from "node:path";
import { DaemonError } from "./errors.ts";
import type { RunnerOptions } from "./options.ts";
import { findRegistered, listRegistered, type RegistryEntry } from "./registry.ts";

const CONTROL = new Set(["stop", "status", "restart", "reload", "upgrade", "reopen-logs", "hold-logs", "logs"]);
const SHORT: Record<string, string> = { w: "workers", d: "daemon", n: "lines", f: "follow" };

/** The settings the flags in `argv` (before `--`) set, by their key in {@linkcode RunnerOptions}. */
function givenKeys(argv: readonly string[]): Set<string> {
  const keys = new Set<string>();
  const end = argv.indexOf("--");
  for (const arg of end < 0 ? argv : argv.slice(0, end)) {
    const flag = /^--([\w-]+)/.exec(arg)?.[1] ?? SHORT[/^-(\w)$/.exec(arg)?.[1] ?? ""];
    if (!flag) continue;
    keys.add(flag === "no-keep-alive" ? "keepAlive" : flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()));
  }
  if (end >= 0) keys.add("args");
  return keys;
}

/** The running daemon `opts` means: the one holding its pid file, else the only one registered under its
 * name (no `--pid-file` given) or at a path ending in the relative `--pid-file` given. */
function entryFor(opts: RunnerOptions, argv: readonly string[]): RegistryEntry | null {
  const found = findRegistered(opts.pidFile);
  if (found) return found;
  const given = argv.map((a, i) => a.startsWith("--pid-file=") ? a.slice(11) : argv[i - 1] === "--pid-file" ? a : "").find(Boolean);
  if (given && isAbsolute(given)) return null;
  const suffix = given ? `/${normalize(given)}` : undefined;
  const matches = listRegistered().filter((e) => suffix ? e.pidFile.endsWith(suffix) : e.name === opts.name);
  if (matches.length > 1) {
    const where = matches.map((e) => e.pidFile).join(", ");
    throw new DaemonError("USAGE", `Several daemons match ${given ? `--pid-file ${given}` : `the name ${opts.name}`} (${where}): pick one with --pid-file`);
  }
  return matches[0] ?? null;
}

/**
 * `opts` completed from the registry: for a control action, the pid file of the daemon it means; for
 * `--restart`, that daemon's remembered settings with the flags of `argv` over them. Other actions, and a
 * daemon not found, are left as they are.
 *
 * @example
 * ```ts
 * import { parseRunnerArgs } from "./options.ts";
 * import { remembered } from "./remembered.ts";
 * const opts = parseRunnerArgs(["--status", "--pid-file", "/nonexistent/app.pid"], { name: "app" });
 * console.log(remembered(opts, ["--status"]).pidFile); // /nonexistent/app.pid: nothing registered there
 * ```
 */
export function remembered(opts: RunnerOptions, argv: readonly string[]): RunnerOptions {
  if (!CONTROL.has(opts.action)) return opts;
  const entry = entryFor(opts, argv);
  if (!entry) return opts;
  if (opts.action !== "restart" || !entry.settings) return { ...opts, pidFile: entry.pidFile, name: entry.name };
  const given = givenKeys(argv);
  const merged: RunnerOptions = { ...opts, ...entry.settings, pidFile: entry.pidFile };
  for (const key of given) if (key in opts && key !== "pidFile") Object.assign(merged, { [key]: opts[key as keyof RunnerOptions] });
  return merged;
}
