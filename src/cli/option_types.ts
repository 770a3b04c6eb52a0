/**
 * The types of the option table (option_table.ts): the actions, the ways a daemon runs, the parsed options and
 * a row of the table. option_table.ts re-exports them.
 *
 * @module
 */
import type { DaemonSettings } from "../settings.ts";

/** What the command line asks for: one action flag, or none (the foreground). */
// deno-fmt-ignore -- a list
export type Action =
  | "foreground" | "daemon" | "stop" | "status" | "restart" | "reload" | "upgrade" | "reopen-logs" | "hold-logs"
  | "logs" | "help" | "version" | "install-service" | "uninstall-service" | "print-service" | "list";

/** The ways a daemon runs; every option says what each does with it. */
export const PATHS = ["foreground", "daemon", "no-keep-alive", "workers", "restart", "unit", "upgrade"] as const;
export type Path = typeof PATHS[number];
/** `n/a`: the path has no place for it (an upgraded master takes only the stage's settings). */
export type Cell = "applied" | "refused" | "n/a";

/** Runner settings after parsing; paths are absolute. The daemon's own settings are the stage's. */
export interface RunnerOptions extends DaemonSettings {
  action: Action;
  /** Whether `pidFile` was given explicitly (a foreground run writes it only then). */
  pidFileGiven: boolean;
  /** The flags given (long names; `--` for the entry's arguments) with their text, for what applies only when asked. */
  given: ReadonlyMap<string, string | boolean | string[]>;
  lines: number;
  json: boolean;
  follow: boolean;
  userService: boolean;
  now: boolean;
  serviceUser?: string;
  serviceGroup?: string;
  watchdogSec?: number;
  /** `--restart --update-env`: the caller's environment instead of the remembered one. */
  updateEnv: boolean;
  /** `--restart`: the environment the daemon was started with (registry), unless `--update-env`. */
  env?: Record<string, string>;
}

export type Group = "Actions" | "Files and identity" | "Start and stop" | "Supervision" | "Logs" | "systemd units";

/** A flag that picks the action. */
export interface ActionRow {
  name: Exclude<Action, "foreground">;
  short?: string;
  help: string;
}

/** An option: see the module's documentation for each field. */
export interface OptionRow {
  name: string;
  short?: string;
  arg?: string;
  multiple?: boolean;
  parse?: (text: string, flag: string, baseDir: string) => unknown;
  /** `settings`: the rest, for a value whose text was `auto` or a percentage (decided again where it runs). */
  format?: (value: never, settings?: Partial<DaemonSettings>) => string;
  /** Settings that record how the value was decided (`--workers auto`, `--max-memory 80%`), for `--status`. */
  derive?: (text: string) => Record<string, string>;
  example: string;
  key: keyof RunnerOptions;
  setting: boolean;
  /** Boolean flags: the setting is `false` when given (`--no-keep-alive` → `keepAlive`). */
  negates?: boolean;
  with: readonly Action[];
  unit: "exec" | `${string}=` | "none";
  help: string;
  group: Group;
  default?: string;
  paths: Record<Path, Cell>;
}
