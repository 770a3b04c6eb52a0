/**
 * What an entry may tell the runner, and be told by it: `ready()`, `onShutdown()`, `onReload()`.
 *
 * The registry lives on `globalThis` under a `Symbol.for` key on purpose: an entry may import daemonic from
 * another copy of the package than the runner's, and both must reach the same hooks. Outside the runner the
 * calls do nothing, so an entry still runs bare with `bun server.ts`.
 *
 * @module
 */

type Hook = () => unknown;

/** The shared registry (internal). */
export interface Lifecycle {
  shutdown: Hook[];
  reload: Hook[];
  ready: Hook[];
  isReady: boolean;
}

const KEY = Symbol.for("daemonic.lifecycle");

/** The process's lifecycle registry, created on first use. */
export function lifecycle(): Lifecycle {
  const g = globalThis as { [KEY]?: Lifecycle };
  return g[KEY] ??= { shutdown: [], reload: [], ready: [], isReady: false };
}

/**
 * Tells the runner the entry is ready to serve: `--daemon` returns then (and systemd is notified).
 * Needed only with `--ready manual`, or for an entry that is ready before or without listening on a socket.
 *
 * @example
 * ```ts
 * import { ready } from "./lifecycle.ts";
 * // ... connect to the database, warm caches ...
 * ready();
 * ```
 */
export function ready(): void {
  const life = lifecycle();
  if (life.isReady) return;
  life.isReady = true;
  for (const hook of life.ready.splice(0)) hook();
}

/**
 * Runs `hook` when the daemon is asked to stop (SIGTERM, SIGINT, `--stop`), before it exits. Hooks run
 * concurrently and are awaited; `--stop` sends SIGKILL if they take longer than its `--timeout`.
 *
 * @example
 * ```ts
 * import { onShutdown } from "./lifecycle.ts";
 * onShutdown(async () => { console.log("closing connections"); });
 * ```
 */
export function onShutdown(hook: () => unknown): void {
  lifecycle().shutdown.push(hook);
}

/**
 * Runs `hook` on SIGHUP (`--reload`) where the entry runs in one process (`--no-keep-alive`, a bare foreground
 * run), e.g. to re-read configuration. Under a supervisor (keep-alive, `--workers`) `--reload` starts the
 * entry again from disk instead, and the new process reads its configuration as it starts.
 *
 * @example
 * ```ts
 * import { onReload } from "./lifecycle.ts";
 * onReload(() => console.log("re-reading config"));
 * ```
 */
export function onReload(hook: () => unknown): void {
  lifecycle().reload.push(hook);
}
