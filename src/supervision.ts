/**
 * The supervision policy, decided once from the settings: the daemon is one process (the entry runs in it),
 * a keep-alive supervisor of one copy of the entry, or a master of N. Unicorn's `worker_processes 1` is
 * still a master: keep-alive is the master of one, and what differs between the three is the data here,
 * which the roles ask instead of comparing `workers` with 0.
 *
 * @module
 */
/** How a daemon is supervised, and what that makes each operation mean. */
export interface Supervision {
  /** `one process`: the entry runs in the daemon itself (`--no-keep-alive`, the foreground without
   * `--keep-alive`); `keep-alive`: a supervisor of one copy; `workers`: a master of `copies`. */
  kind: "one process" | "keep-alive" | "workers";
  /** Copies of the entry the master keeps running (0: no master). */
  copies: number;
  /** What HUP (`--reload`) means: the entry's onReload hooks in the process itself, or a rolling restart
   * (each copy replaced by one started from the executable on disk, successor first). */
  reload: "hooks" | "rolling restart";
  /** Who reads the `--env-file`s again: the master for each copy it starts, or the entry's own process on HUP. */
  envFilesReadBy: "master" | "entry";
  /** A TERM to the master (quick stop) is forwarded to the copies: whether they run the onShutdown hooks first
   * (keep-alive's copy, as a single process would; workers exit at once), and the seconds they get before
   * SIGKILL (`timeout`: `--timeout`). */
  quickStop: { hooks: boolean; seconds: number | "timeout" };
}

/** The settings the policy is decided from (in the foreground `keepAlive` is `--keep-alive`, off unless given). */
export interface SupervisionSettings {
  workers: number;
  keepAlive: boolean;
}

/**
 * The policy of a daemon with these settings.
 *
 * @example
 * ```ts
 * import { supervisionOf } from "./supervision.ts";
 * console.log(supervisionOf({ workers: 0, keepAlive: true }).kind); // keep-alive
 * console.log(supervisionOf({ workers: 4, keepAlive: true }).copies); // 4
 * console.log(supervisionOf({ workers: 0, keepAlive: false }).reload); // hooks
 * ```
 */
export function supervisionOf(settings: SupervisionSettings): Supervision {
  if (settings.workers > 0) {
    return {
      kind: "workers",
      copies: settings.workers,
      reload: "rolling restart",
      envFilesReadBy: "master",
      quickStop: { hooks: false, seconds: 5 },
    };
  }
  if (settings.keepAlive) {
    return {
      kind: "keep-alive",
      copies: 1,
      reload: "rolling restart",
      envFilesReadBy: "master",
      quickStop: { hooks: true, seconds: "timeout" },
    };
  }
  return {
    kind: "one process",
    copies: 0,
    reload: "hooks",
    envFilesReadBy: "entry",
    quickStop: { hooks: true, seconds: "timeout" },
  };
}

/** Whether a master runs apart from the entry (it can restart, replace, watch memory and stamp output). */
export function supervised(policy: Supervision): boolean {
  return policy.copies > 0;
}
