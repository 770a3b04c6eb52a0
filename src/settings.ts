/**
 * A daemon's settings: what the parsed command line (options.ts, from option_table.ts) or the library's
 * options give, what the stage hands the daemon (stage.ts) and what the registry remembers.
 *
 * @module
 */
import type { LogFormat, LogLevel } from "./log/lines.ts";

/** A daemon's settings, every default applied: where the command line is parsed (options.ts), or by
 * {@linkcode withDefaults} for the library's {@linkcode DaemonOptions}. */
export interface DaemonSettings {
  /** The daemon's name: default pid file, process titles, messages. */
  name: string;
  /** Absolute pid file path. */
  pidFile: string;
  /** Absolute log file path for stdout and stderr; `undefined` for /dev/null. */
  logFile?: string;
  /** Lowest level of `getLogger()` records and the runner's lines. */
  logLevel: LogLevel;
  /** `text` or `json` (JSON Lines). */
  logFormat: LogFormat;
  /** Working directory of the daemon. */
  chdir: string;
  /** File mode creation mask of the daemon. */
  umask: number;
  /** Seconds `--stop` (and a graceful worker stop) waits before SIGKILL. */
  timeout: number;
  /** Seconds the launcher waits for the daemon to become ready. */
  startTimeout: number;
  /** `auto`: ready when the entry listens (or calls `ready()`); `manual`: only when it calls `ready()`. */
  ready: "auto" | "manual";
  /** Pre-forked workers sharing the entry's port; 0 runs the entry in one worker (keep-alive) or the daemon. */
  workers: number;
  /** With `workers` 0: a supervisor restarts the entry when it dies (`false`: `--no-keep-alive`, one process). */
  keepAlive: boolean;
  /** Seconds without a worker heartbeat before the master kills it. */
  workerTimeout: number;
  /** Arguments for the entry (everything after `--`). */
  args: string[];
  /** `--user`, `--group`: who runs the entry (see privileges.ts); `undefined`: who started it. */
  user?: string;
  group?: string;
  /** Absolute paths of `--env-file`s, read again for every new worker and on every reload. */
  envFiles: string[];
  /** Bytes of RSS above which a worker is replaced (`--max-memory`); 0 for no limit. */
  maxMemory: number;
  /** `--workers auto`: how the count was decided (the cgroup's CPU limit, or the affinity mask). */
  workersAuto?: string;
  /** `--max-memory PERCENT%`: the share of the cgroup's memory limit it was taken from. */
  maxMemoryShare?: string;
  /** `--metrics ADDR`: where the supervisor serves Prometheus metrics (see metrics.ts). */
  metrics?: string;
  /** Each line the entry writes to stdout and stderr gets a time prefix (`--log-timestamps`). */
  logTimestamps: boolean;
}

/** The default of every setting but the pid file (options.ts derives that one from the name) and the
 * entry's arguments: the command line's defaults and the library's. */
export const DEFAULTS = {
  name: "daemon",
  logLevel: "info",
  logFormat: "text",
  chdir: "/",
  umask: 0o022,
  timeout: 10,
  startTimeout: 60,
  ready: "auto",
  workers: 0,
  keepAlive: true,
  workerTimeout: 60,
  maxMemory: 0,
  logTimestamps: false,
} as const satisfies Omit<
  DaemonSettings,
  "pidFile" | "args" | "logFile" | "user" | "group" | "envFiles" | "workersAuto" | "maxMemoryShare" | "metrics"
>;
