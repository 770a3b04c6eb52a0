/**
 * `--list` (and `daemonic ls`): every daemon this user started, from any daemonic binary, as `pm2 ls` shows
 * its apps — a table, or JSON with `--json` (see overview.ts). Entries whose daemon is gone (killed with
 * SIGKILL, or its machine's /run survived it) are shown once as `stale` and removed.
 *
 * @module
 */
import { type Overview, overview } from "../overview.ts";
import type { RunnerOptions } from "../cli/options.ts";
import { readPidFile } from "../pidfile.ts";
import { findRegistered, listRegistered, type RegistryEntry } from "../registry.ts";
import { ExitCode } from "../errors.ts";

/** The overviews of every registered daemon, running ones first, then the stale entries just pruned. */
export function overviews(): Overview[] {
  const stale: RegistryEntry[] = [];
  const running = listRegistered(undefined, (e) => stale.push(e)).map((e) => overview(e, "running"));
  return [...running.sort((a, b) => a.name.localeCompare(b.name)), ...stale.map((e) => overview(e, "stale"))];
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/**
 * The table `--list` prints: one row a daemon, columns aligned.
 *
 * @example
 * ```ts
 * import { table } from "./list.ts";
 * console.log(table([]).split("\n")[0].split(/\s+/).join(" "));
 * // name pid status uptime restarts workers rss cpu ports log
 * ```
 */
export function table(rows: Overview[]): string {
  const head = ["name", "pid", "status", "uptime", "restarts", "workers", "rss", "cpu", "ports", "log"];
  const cells = rows.map((o) => [
    o.name,
    String(o.pid),
    o.status,
    o.status === "running" ? duration(o.uptime) : "-",
    String(o.restarts),
    String(o.workers),
    `${(o.rss / 1048576).toFixed(1)}M`,
    `${o.cpu}%`,
    o.ports.join(",") || "-",
    o.logFile ?? "-",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  return [head, ...cells].map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}

/** `--list [--json]`: prints every daemon of this user; `--json` prints an array of {@linkcode Overview}. */
export function list(json: boolean): number {
  const rows = overviews();
  if (json) console.log(JSON.stringify(rows, null, 2));
  else if (rows.length === 0) console.log("no daemons running");
  else console.log(table(rows));
  return 0;
}

/** `--status --json`: the daemon's {@linkcode Overview} and what `--restart` would start it with (its
 * `--env-file`s, how many variables of its environment are kept: never their values), or `{name, pidFile,
 * status}` with `stopped` or `stale`; returns the LSB exit code `--status` returns. */
export function statusJson(opts: RunnerOptions): number {
  const state = readPidFile(opts.pidFile);
  const entry = state.state === "running" ? findRegistered(opts.pidFile) : null;
  const environment = entry &&
    { envFiles: entry.settings?.envFiles ?? [], variables: Object.keys(entry.env ?? {}).length };
  if (entry) console.log(JSON.stringify({ ...overview(entry, "running"), environment }, null, 2));
  else if (state.state === "running") {
    console.log(JSON.stringify({ name: opts.name, pid: state.pid, pidFile: opts.pidFile, status: "running" }, null, 2));
  } else {console.log(
      JSON.stringify(
        { name: opts.name, pidFile: opts.pidFile, status: state.state === "stale" ? "stale" : "stopped" },
        null,
        2,
      ),
    );}
  return state.state === "running"
    ? ExitCode.OK
    : state.state === "stale"
    ? ExitCode.DEAD_PID_FILE
    : ExitCode.NOT_RUNNING;
}
