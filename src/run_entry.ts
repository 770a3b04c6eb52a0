/**
 * Running the entry: the one sequence a daemon of one process, a foreground run and a worker share. The
 * entry sees its own argv, is evaluated (a default export with `fetch` is served), and is watched until it
 * is ready — or fails: it throws, or leaves nothing to run before it was ready.
 *
 * @module
 */
import { RUNTIME } from "./_runtime.ts";
import { serveDefaultExport } from "./default_export.ts";
import { DaemonError } from "./errors.ts";
import { failWhenIdle, watchReadiness } from "./readiness.ts";

/** The entry as the runner has it. */
export interface Entry {
  /** Absolute path of the entry script, its `process.argv[1]`; none for a script that daemonized itself
   * (`daemonize()`), whose argv stays its own. */
  path?: string;
  /** Imports (evaluates) the entry. */
  load: () => Promise<unknown>;
  /** Whether it may import `node:` modules, when known without its sources (a built executable's). */
  usesNode?: boolean;
}

/** What the process running the entry does at its two outcomes. */
export interface EntryOutcome {
  /** The entry is ready (it listens, called `ready()`, or ran 1 s without failing). */
  ready: () => void;
  /** It failed before it was ready: an error it threw, or a START_FAILED {@linkcode DaemonError} for an
   * entry that is no server. */
  fail: (err: unknown) => never;
}

/**
 * Runs `entry` with `settings.args` as its arguments in this process; resolves once it is evaluated.
 *
 * @example
 * ```ts ignore
 * // ignore: it evaluates an entry in this process
 * import { runEntry } from "./run_entry.ts";
 * await runEntry({ path: "/srv/app.ts", load: () => import("/srv/app.ts") }, { args: ["8080"], ready: "auto" }, {
 *   ready: () => console.log("ready"),
 *   fail: (err) => { throw err; },
 * });
 * ```
 */
export async function runEntry(
  entry: Entry,
  settings: { args: readonly string[]; ready: "auto" | "manual" },
  on: EntryOutcome,
): Promise<void> {
  if (entry.path !== undefined) RUNTIME.setEntryArgv(entry.path, settings.args);
  RUNTIME.labelPortInUse(); // an EADDRINUSE says which port
  let ready = false;
  const evaluated = entry.load().then(serveDefaultExport).catch(on.fail);
  failWhenIdle(() => ready, (message) => on.fail(new DaemonError("START_FAILED", `Cannot start: ${message}`)));
  watchReadiness(settings.ready, evaluated, () => {
    ready = true;
    on.ready();
  });
  await evaluated;
}
