/**
 * The foreground run: `./mydaemon` without `--daemon` (a terminal, a container, systemd's `Type=notify` or
 * `Type=simple`). The entry runs in this process — or, with `--workers N`, this process is the master and
 * the workers run under it, as Unicorn's master runs without `-D` — with the same signal handlers as a
 * daemon; output goes to `--log-file` when given; systemd hears when it is ready (MAINPID: this process).
 * As a container's PID 1 the runner becomes a tiny init instead (see init.ts).
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { libc, O } from "../../ffi/mod.ts";
import { ignoreInspectorSignal, selfCommand } from "../_runtime.ts";
import { watchEnvFiles } from "../env_file.ts";
import { DaemonError } from "../errors.ts";
import { runnerLog, setRunnerLogging } from "../log/lines.ts";
import { recordLogPath } from "../log/show.ts";
import { type Notifier, systemdNotifier } from "../notify.ts";
import { foregroundTableFile, Registration } from "../registry.ts";
import type { RunnerOptions } from "../cli/options.ts";
import { PidFile } from "../pidfile.ts";
import { listeningAddresses } from "../worker/port_owner.ts";
import { ReadyReporter } from "../channel.ts";
import { dropPrivileges, identityOf } from "../privileges.ts";
import { type Entry, runEntry } from "../run_entry.ts";
import { handleSignals } from "../signals.ts";
import { withDefaults } from "../stage.ts";
import { checkStartInputs } from "../start_inputs.ts";
import { entryFailure, entryStack } from "../startup_error.ts";
import { supervised, supervisionOf } from "../supervision.ts";
import type { StartedDaemon } from "./daemon.ts";
import { mark } from "../trace.ts";

/** Puts stdout and stderr on `--log-file` (O_APPEND, created under `--umask`), as a daemon has them. */
/** Returns a descriptor of the stderr it replaced, for a start-up failure to reach the terminal too. */
function logTo(path: string, umask: number): number {
  const callers = libc.umask(umask);
  try {
    const terminal = libc.duplicate(2);
    const fd = libc.open(path, O.WRONLY | O.APPEND | O.CREAT | O.NOCTTY, 0o666);
    libc.dup2(fd, 1);
    libc.dup2(fd, 2);
    libc.close(fd);
    return terminal;
  } finally {
    libc.umask(callers);
  }
}

/** This process's umask: from /proc/self/status, else by setting it and back. */
function currentUmask(): number {
  // Linux 4.7 and later say it there, without binding libc (~5 ms on Deno) on a plain start
  const shown = /^Umask:\s*([0-7]+)/m.exec(host.readText("/proc/self/status"))?.[1];
  if (shown !== undefined) return parseInt(shown, 8);
  const mask = libc.umask(0o022);
  libc.umask(mask);
  return mask;
}

/**
 * Without `--pid-file`, a foreground run (a container's, a service's) is still found by `--status` (an exec
 * probe): registered under its default pid file's path (registry.ts) from READY=1 until STOPPING=1, so the
 * probe says 0 while it serves and 3 before and while it stops. systemd hears both as before.
 */
function findableWhileReady(opts: RunnerOptions, systemd: Notifier): Notifier {
  if (opts.pidFileGiven) return systemd; // its pid file is found
  let registration: Registration | undefined;
  const drop = () => (registration?.remove(), registration = undefined);
  host.onExit(drop);
  const send = systemd.notify.bind(systemd);
  // The notifier itself, so what a master sets on it (the watchdog's `healthy`) and its handover stay.
  systemd.notify = (state: string) => {
    send(state);
    if (state.startsWith("STOPPING=1")) drop();
    if (!state.startsWith("READY=1") || registration) return;
    try {
      registration = Registration.claim(opts.pidFile, opts.name, host.pid(), libc, {
        settings: withDefaults(opts),
        command: selfCommand(),
        foreground: true,
      });
    } catch (err) {
      const held = err instanceof DaemonError && err.code === "ALREADY_RUNNING";
      const why = held
        ? `pid ${err.pid} is registered as ${opts.name}: give this one its own --name or --pid-file`
        : (err as Error).message;
      runnerLog(`--status will not find this process: ${why}`, "warning");
    }
  };
  return systemd;
}

/** What a foreground process has before the entry or the workers run; `fail` ends it for an error. */
function startInForeground(opts: RunnerOptions, fail: (err: unknown) => never): StartedDaemon {
  checkStartInputs(opts); // a missing --chdir or --env-file: 66 before anything is done
  identityOf(opts); // --user: refused (77, 67) before anything is done
  // --chdir and --umask apply when asked for; otherwise the foreground keeps what it was started with.
  if (opts.given.has("chdir")) host.chdir(opts.chdir);
  if (opts.given.has("umask")) libc.umask(opts.umask);
  const terminal = opts.logFile ? logTo(opts.logFile, opts.given.has("umask") ? opts.umask : currentUmask()) : 2;
  setRunnerLogging({ level: opts.logLevel, format: opts.logFormat }); // LogTape too, on the entry's first getLogger()
  // A foreground service (systemd Type=simple) is as exposed as a daemon; 100 ms on, binding libc (~5 ms on
  // Deno) is off the start of an entry that needs none of it.
  ignoreInspectorSignal(libc, 100);
  let pidFile: PidFile | undefined;
  if (opts.pidFileGiven) {
    const start = {
      settings: withDefaults(opts),
      command: selfCommand(),
      env: { ...host.environ } as Record<string, string>,
    };
    const held = pidFile = PidFile.acquire(opts.pidFile, host.pid(), undefined, opts.name, start);
    host.onExit(() => held.release());
  }
  // A start-up failure: in the log (an entry's error with its whole stack), and in one line on the terminal
  // the run was started from.
  const fatal = (err: unknown): never => {
    const error = err instanceof DaemonError
      ? err
      : new DaemonError("START_FAILED", `Cannot start: the entry failed during start-up: ${entryFailure(err)}`);
    runnerLog(err instanceof DaemonError ? error.message : entryStack(err), "fatal");
    if (terminal !== 2) libc.dup2(terminal, 2);
    return fail(error);
  };
  // No launcher waits on a foreground run: its one report is the line on the terminal once ready.
  const tableFile = opts.pidFileGiven ? undefined : foregroundTableFile(opts.pidFile);
  const systemd = findableWhileReady(opts, systemdNotifier());
  return { pidFile, reporter: new TerminalReporter(opts, terminal), fatal, systemd, tableFile };
}

/**
 * The reports of a foreground run, whose launcher is the person at the terminal: once ready, one line on it
 * says where it serves and how to stop it; nothing when stderr is no terminal (a script, systemd).
 */
class TerminalReporter extends ReadyReporter {
  constructor(private readonly opts: RunnerOptions, private readonly terminal: number) {
    super(-1);
  }

  override ready(): void {
    if (this.pending && libc.isTerminal(this.terminal)) {
      const addresses = listeningAddresses(host.pid());
      const who = `${this.opts.name} (pid ${host.pid()}${
        this.opts.workers ? `, ${this.opts.workers} worker${this.opts.workers === 1 ? "" : "s"}` : ""
      })`;
      const line = `${who} ${addresses.length ? `listening on ${addresses.join(", ")}` : "ready"}: Ctrl-C to stop\n`;
      libc.write(this.terminal, new TextEncoder().encode(line));
    }
    super.ready();
  }
}

/** Runs the entry in this process, or its copies under this one as their master (`--workers`, `--keep-alive`);
 * resolves once it is evaluated. `fail` ends the process with an error's message and code. */
export async function runForeground(opts: RunnerOptions, entry: Entry, fail: (err: unknown) => never): Promise<void> {
  if (host.pid() === 1) { // a container's first process: its child runs the entry
    setRunnerLogging({ level: opts.logLevel, format: opts.logFormat }); // for init's own line
    return (await import("./init.ts")).serveInit({
      master: supervisionOf(opts).kind === "workers",
      timeout: opts.timeout,
    });
  }
  mark("foreground: role modules loaded");
  // Before the workers, unlike a daemon's master: this is what points fds 1 and 2, which they inherit, at --log-file.
  const started = startInForeground(opts, fail);
  mark("foreground: inputs, logging, pid file");
  // Its workers run where it does, under its umask (its own, unless --chdir or --umask changed them above).
  const here = { chdir: host.cwd(), umask: currentUmask() };
  // The master's and init's modules are loaded only by a foreground that is one (most run the entry here).
  if (supervised(supervisionOf(opts))) {
    const { runMaster } = await import("./master.ts");
    return runMaster({ ...withDefaults(opts), ...here, role: "daemon", command: selfCommand() }, () => started);
  }
  dropPrivileges(opts); // after the pid file, before the entry (with workers, each worker drops)
  watchEnvFiles(opts.envFiles, runnerLog); // before handleSignals: SIGHUP re-reads them before onReload hooks
  handleSignals(runnerLog, { logFile: opts.logFile, systemd: started.systemd, timeout: opts.timeout });
  mark("foreground: signals set up");
  // Before it is ready, the entry's error ends the run in one line (exit 69); after, the runtime's own handling.
  const failed = (err: unknown) => started.fatal(err);
  host.onFatal(failed);
  await runEntry(entry, opts, {
    ready: () => {
      mark("foreground: entry ready");
      host.offFatal(failed);
      if (opts.pidFileGiven) recordLogPath(opts.pidFile, opts.logFile); // for --logs; a failed start leaves none
      started.systemd.notify(`READY=1\nMAINPID=${host.pid()}`);
      started.reporter.ready();
    },
    fail: started.fatal,
  });
}
