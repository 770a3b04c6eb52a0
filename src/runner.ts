/**
 * The runner: the command line of a built daemon (`./mydaemon --daemon …`) and of `daemonic run`. It finds
 * which process this is — a daemon or a worker that its parent handed a stage, or a user's command — and
 * hands over to that role (src/roles/), which runs the process's life.
 *
 * @module
 */
import { mark } from "./trace.ts"; // first: its first mark is the runner's start
import { RUNTIME, setTitle } from "./_runtime.ts";
import type { RunnerOptions } from "./cli/option_table.ts";
import { ExitCode, userPathError } from "./errors.ts";
import { type DaemonStage, takeStage } from "./stage.ts";
import { supervised, supervisionOf } from "./supervision.ts";
import type { Entry } from "./run_entry.ts";

// Each role is imported when this process turns out to be it: the chunks of the roles it is not (their
// modules, LogTape, node:util's parser, node:child_process …) are never loaded; every process pays for
// what it loads before it runs the entry, or answers --status.
const control = () => import("./roles/control.ts");
const launcher = () => import("./roles/launcher.ts");
const service = () => import("./cli/service.ts");

/** The program the runner runs. */
export interface App {
  /** Default daemon name (the binary's or the entry's base name). */
  name: string;
  /** daemonic's version, for `--version`. */
  version: string;
  /** Absolute path of the entry script, for the entry's `process.argv[1]`. */
  entryPath: string;
  /** Imports (evaluates) the entry. */
  load: () => Promise<unknown>;
  /** Whether the entry may import `node:` modules, decided when it was built (else read from `entryPath`). */
  usesNode?: boolean;
  /** The runner's arguments (default: `process.argv.slice(2)`). */
  argv?: string[];
  /** Where relative paths on the command line resolve (default: the working directory). */
  baseDir?: string;
}

/** The name of a daemon built from `entryPath` or running as `execPath`. */
export function nameOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1).replace(/\.[cm]?[jt]sx?$/, "") || "daemon";
}

/** The entry as the roles that run it take it. */
const entryOf = (app: App): Entry => ({ path: app.entryPath, load: app.load, usesNode: app.usesNode });

/** Prints a line on stdout synchronously, so an exit right after cannot lose it. */
function say(text: unknown): void {
  RUNTIME.sys.writeStdout(`${text}\n`);
}

/** Ends the process for `err`: one line and its exit code for what the user can fix, a stack for a bug. */
function exitWith(err: unknown): never {
  const userError = userPathError(err);
  if (userError) {
    // synchronous: a pipe write must not be lost to the exit that follows
    RUNTIME.sys.writeStderr(`${userError.message}\n`);
    RUNTIME.sys.exit(userError.exitCode);
  }
  RUNTIME.sys.writeStderr(`daemonic: internal error: ${(err as Error)?.stack ?? err}\n`);
  RUNTIME.sys.exit(ExitCode.SOFTWARE);
}

async function runDaemon(app: App, stage: DaemonStage): Promise<void> {
  const { serveDaemon, startDaemon } = await import("./roles/daemon.ts");
  mark("daemon: role modules loaded");
  if (supervised(supervisionOf(stage))) {
    // keep-alive: a master of one worker
    const { runMaster } = await import("./roles/master.ts");
    mark("master: role modules loaded");
    return runMaster(stage, () => startDaemon(stage));
  }
  setTitle(app.name);
  return serveDaemon(stage, entryOf(app));
}

/** The command line parsed and completed from the registry; for a start, its inputs and identity checked. */
async function optionsOf(app: App, argv: string[]): Promise<RunnerOptions> {
  const { parseRunnerArgs } = await import("./cli/options.ts");
  mark("options modules loaded");
  const given = parseRunnerArgs(argv, { name: app.name, baseDir: app.baseDir });
  // Only a control action asks the registry which daemon it means: a start loads none of that.
  const opts = given.action === "foreground" || given.action === "daemon"
    ? given
    : (await import("./cli/remembered.ts")).remembered(given);
  mark("options parsed");
  if (["daemon", "restart", "foreground", "install-service"].includes(opts.action)) { // a control command loads neither
    const [{ identityOf }, { checkStartInputs }] = await Promise.all([
      import("./privileges.ts"),
      import("./start_inputs.ts"),
    ]);
    checkStartInputs(opts); // 66 before anything
    // 77 or 67 before anything: a unit naming a user that does not exist would fail only when systemd starts it
    identityOf(opts);
  }
  return opts;
}

/** Runs one action of the command line; returns the exit code, or nothing when the entry runs on. */
async function act(app: App, argv: string[]): Promise<number | void> {
  const opts = await optionsOf(app, argv);
  const command = async () => (await service()).serviceCommand(argv, app.entryPath);
  switch (opts.action) {
    case "help":
      say((await import("./cli/usage.ts")).usage(opts.name, RUNTIME.sys.columns()));
      return 0;
    case "version":
      say(`${opts.name} (daemonic ${app.version})`);
      return 0;
    case "status":
      return opts.json ? (await import("./roles/list.ts")).statusJson(opts) : (await control()).status(opts);
    case "list":
      return (await import("./roles/list.ts")).list(opts.json);
    case "stop":
      (await control()).stop(opts);
      return 0;
    case "reload":
      (await import("./roles/deploy.ts")).reload(opts);
      return 0;
    case "upgrade":
      (await import("./roles/deploy.ts")).upgrade(opts);
      return 0;
    case "hold-logs":
      (await control()).holdLogs(opts);
      return 0;
    case "reopen-logs":
      (await control()).reopenLogs(opts);
      return 0;
    case "logs":
      return (await control()).logs(opts);
    case "restart":
      (await control()).stop(opts);
      say(await (await launcher()).launch(opts, undefined, opts.env ?? RUNTIME.sys.environ));
      return 0;
    case "daemon":
      say(await (await launcher()).launch(opts));
      return 0;
    case "install-service":
      (await service()).installService(opts, await command(), app.name);
      return 0;
    case "uninstall-service":
      (await service()).uninstallService(opts, await command());
      return 0;
    case "print-service": {
      say(
        (await service()).unitText({ command: await command(), opts, userManager: opts.userService }, app.name)
          .trimEnd(),
      );
      return 0;
    }
    case "foreground":
      return await (await import("./roles/foreground.ts")).runForeground(
        opts,
        entryOf(app),
        exitWith,
      );
  }
}

/**
 * Runs the runner's command line for `app`. Never returns in the launcher and control actions (it exits
 * with the documented code); in the daemon and foreground cases it resolves once the entry is evaluated.
 *
 * @example
 * ```ts ignore
 * // ignore: it runs (or daemonizes) the entry, as every test of the suite does
 * await main({ name: "app", version: "0.1.0", entryPath: "/srv/app.ts", load: () => import("/srv/app.ts") });
 * ```
 */
export async function main(app: App): Promise<void> {
  mark("runner loaded");
  const stage = takeStage();
  mark(`stage read (${stage?.role ?? "none"})`);
  if (stage?.role === "worker") {
    return (await import("./roles/worker.ts")).serveWorker(stage, entryOf(app));
  }
  if (stage?.role === "detach") return (await import("./roles/detach.ts")).detach(stage);
  if (stage) return runDaemon(app, stage);
  try {
    const code = await act(app, app.argv ?? RUNTIME.sys.args());
    if (code === undefined) return;
    mark("action done");
    RUNTIME.sys.exit(code);
  } catch (err) {
    exitWith(err);
  }
}
