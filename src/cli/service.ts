/**
 * `--install-service`, `--uninstall-service`, `--print-service`: a complete systemd unit for this daemon,
 * written, enabled and started with systemctl, so one copied binary starts at boot and is restarted.
 *
 * @module
 */
import { writeFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { host, parentDir } from "../../ffi/_host.ts";
import { spawnSync } from "node:child_process";
import { selfCommand } from "../_runtime.ts";
import { DaemonError } from "../errors.ts";
import { DEFAULTS, formatValue, OPTIONS, type RunnerOptions } from "./option_table.ts";
import { supervisionOf } from "../supervision.ts";

/** The first line of every unit daemonic writes; `--uninstall-service` removes only units that have it. */
const MARK = "# Written by daemonic --install-service.";

/** What the unit is generated from. systemd runs the runner in the foreground (`Type=notify`): the entry, or
 * with `--workers` the master, is the main process and tells systemd READY=1, RELOADING=1 and STOPPING=1. */
export interface UnitSpec {
  /** The command that starts the runner: the binary, or the runtime, its flags, the CLI script, `run`, ENTRY. */
  command: string[];
  opts: RunnerOptions;
  /** Whether it goes to the user's manager (`systemctl --user`) instead of the system's. */
  userManager: boolean;
}

/** The pid file: `--pid-file`, else in the unit's runtime directory: /run/NAME, or $XDG_RUNTIME_DIR/NAME
 * (`%t`, which systemd expands) for a user unit. */
function pidFileOf(spec: UnitSpec): string {
  const { name } = spec.opts;
  return spec.opts.pidFileGiven ? spec.opts.pidFile : `${spec.userManager ? "%t" : "/run"}/${name}/${name}.pid`;
}

/** Quotes one argument for an Exec*= line: specifiers (%) and variables ($) are taken literally. */
export function execQuote(arg: string): string {
  const literal = arg.replaceAll("%", "%%").replaceAll("$", "$$$$");
  if (/^[\w@%+=:,./-]+$/.test(literal)) return literal;
  return `"${literal.replace(/[\\"]/g, "\\$&").replace(/\n/g, "\\n")}"`;
}

/** An Exec*= line; the arguments in `ours` are daemonic's own paths, whose specifiers (%t, %L) systemd expands. */
function execLine(argv: string[], ours: string[]): string {
  return argv.map((a) => ours.includes(a) ? a : execQuote(a)).join(" ");
}

/** The runner's flags that go into ExecStart= (option_table.ts: `unit: "exec"`), each set away from its
 * default; the pid file and the name are placed by the unit itself. */
function runnerFlags(opts: RunnerOptions): string[] {
  const flags: string[] = [];
  for (const row of OPTIONS) {
    const value = opts[row.key];
    if (row.unit !== "exec" || row.key === "pidFile" || row.key === "name" || value === undefined) continue;
    if (row.key === "keepAlive") { // a supervisor in the foreground (MAINPID): `systemctl reload` is lossless
      if (supervisionOf(opts).kind === "keep-alive") flags.push(`--${row.name}`);
      continue;
    }
    if (value === DEFAULTS[row.key as keyof typeof DEFAULTS] && !(row.key === "workerTimeout" && opts.workers > 0)) {
      continue;
    }
    if (typeof value === "boolean") flags.push(`--${row.name}`);
    else for (const v of [value].flat()) flags.push(`--${row.name}`, formatValue(row, v, opts));
  }
  return flags;
}

/** The unit text for `spec`. */
export function unitText(spec: UnitSpec, defaultName: string): string {
  const { opts, command, userManager } = spec;
  const pidFile = pidFileOf(spec), ours = spec.opts.pidFileGiven ? [] : [pidFile];
  const pidArgs = ["--pid-file", pidFile, ...(opts.name !== defaultName ? ["--name", opts.name] : [])];
  // --timeout in ExecStart too: a master's graceful stop (QUIT) and keep-alive's stop wait it.
  const timeout = opts.timeout !== DEFAULTS.timeout ? ["--timeout", String(opts.timeout)] : [];
  const start = [...command, ...pidArgs, ...timeout, ...runnerFlags(opts)];
  if (opts.args.length) start.push("--", ...opts.args);
  const service = [
    "Type=notify",
    "NotifyAccess=main",
    `TimeoutStartSec=${opts.startTimeout}`,
    `ExecStart=${execLine(start, ours)}`,
    `ExecReload=${execLine([...command, "--reload", ...pidArgs], ours)}`,
    `ExecStop=${execLine([...command, "--stop", ...pidArgs, "--timeout", String(opts.timeout)], ours)}`,
    `Restart=${opts.keepAlive ? "on-failure" : "no"}`,
    // --stop sends SIGKILL after --timeout itself; systemd steps in only if that too hangs.
    `TimeoutStopSec=${opts.timeout + 5}`,
    ...(opts.watchdogSec ? [`WatchdogSec=${opts.watchdogSec}`] : []),
    ...(opts.serviceUser ? [`User=${opts.serviceUser}`] : []),
    ...(opts.serviceGroup ? [`Group=${opts.serviceGroup}`] : []),
    // Ports below 1024 without root, and nothing more: NoNewPrivileges keeps it from gaining others.
    ...(opts.serviceUser && opts.serviceUser !== "root" ? ["AmbientCapabilities=CAP_NET_BIND_SERVICE"] : []),
    `RuntimeDirectory=${opts.name}`,
    `WorkingDirectory=${opts.chdir}`,
    `UMask=${opts.umask.toString(8).padStart(4, "0")}`,
    "NoNewPrivileges=yes",
    ...(userManager ? [] : [
      "ProtectSystem=full",
      // A private /tmp would hide a binary or script kept in /tmp.
      ...(command.some((a) => /^\/(var\/)?tmp\//.test(a)) ? [] : ["PrivateTmp=yes"]),
      "PrivateDevices=yes",
      "ProtectKernelTunables=yes",
      "ProtectKernelModules=yes",
      "ProtectControlGroups=yes",
      "RestrictSUIDSGID=yes",
      "LockPersonality=yes",
    ]),
  ];
  return [
    MARK,
    "# Regenerate it with the binary's --print-service (same options) rather than edit it.",
    "[Unit]",
    `Description=${opts.name} (daemonic)`,
    "After=network.target",
    "",
    "[Service]",
    ...service,
    "",
    "[Install]",
    `WantedBy=${userManager ? "default.target" : "multi-user.target"}`,
    "",
  ].join("\n");
}

/**
 * The command that starts this runner again: the executable alone for a compiled binary; for `daemonic run`
 * the runtime, its flags and the CLI script (made absolute), `run` and ENTRY. `runnerArgv` is the tail of
 * the process's argv that the runner parsed.
 */
export function serviceCommand(runnerArgv: readonly string[], entryPath: string): string[] {
  const self = selfCommand();
  const prefix = self.args.slice(0, self.args.length - runnerArgv.length);
  if (prefix.length === 0) return [self.path];
  prefix[prefix.length - 1] = entryPath; // what was typed as ENTRY, maybe relative
  // `npm:daemonic` resolves through the project's node_modules only from the project: the unit runs in
  // --chdir, so it names the script the specifier resolved to (the runtime's argv[1]).
  const script = (a: string) => a.startsWith("npm:") ? process.argv[1] : a;
  // Relative paths (the script, a --config file) made absolute; words (`run`) stay, even where ./run exists.
  const isPath = (a: string) =>
    !a.startsWith("-") && !isAbsolute(a) && /\/|\.[a-z]+$/.test(a) && host.exists(resolve(self.cwd, a));
  return [self.path, ...prefix.map(script).map((a) => isPath(a) ? resolve(self.cwd, a) : a)];
}

function unitPath(opts: RunnerOptions): string {
  if (!opts.userService) return `/etc/systemd/system/${opts.name}.service`;
  const config = host.env("XDG_CONFIG_HOME") || `${host.env("HOME")}/.config`;
  return `${config}/systemd/user/${opts.name}.service`;
}

function systemctl(opts: RunnerOptions, args: string[]): { ok: boolean; output: string } {
  const r = spawnSync("systemctl", [...(opts.userService ? ["--user"] : []), ...args], {
    encoding: "utf8",
    timeout: (opts.timeout + opts.startTimeout + 10) * 1000,
  });
  const output = `${r.stderr ?? ""}${r.stdout ?? ""}${r.error ? r.error.message : ""}`.trim().replace(
    /\s*\n\s*/g,
    "; ",
  );
  return { ok: r.status === 0, output };
}

/** Fails, saying what to use instead, where no systemd manages services. */
function requireSystemd(opts: RunnerOptions, command: string[]): void {
  if (host.exists("/run/systemd/system")) return;
  const sh = (argv: string[]) =>
    argv.map((a) => /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const pidArgs = ["--pid-file", `/run/${opts.name}.pid`];
  const start = sh([...command, "--daemon", ...pidArgs, ...(opts.args.length ? ["--", ...opts.args] : [])]);
  const stop = sh([...command, "--stop", ...pidArgs]);
  throw new DaemonError(
    "START_FAILED",
    `Cannot ${opts.action.replace("-service", "")} a systemd service: systemd is not running here ` +
      `(no /run/systemd/system): start ${opts.name} from your init script with ${start} and stop it with ${stop} ` +
      "(start-stop-daemon --pidfile works on that pid file too)",
  );
}

/**
 * `--install-service`: writes the unit, reloads systemd and enables it (`--now`: starts it too). Any failed
 * step undoes the earlier ones, so a failure leaves no unit behind.
 */
export function installService(opts: RunnerOptions, command: string[], defaultName: string): void {
  requireSystemd(opts, command);
  const path = unitPath(opts);
  if (!opts.userService && host.uid() !== 0) {
    throw new DaemonError(
      "NO_PERMISSION",
      `Cannot install ${path}: writing /etc/systemd/system needs root: run it with sudo, or pass --user-service for ` +
        `your own systemd`,
    );
  }
  if (host.exists(path) && !host.readText(path).startsWith(MARK)) {
    throw new DaemonError(
      "CANNOT_CREATE",
      `Cannot install ${path}: a unit not written by daemonic is there: remove it or pick another --name`,
    );
  }
  host.makeDir(parentDir(path), { recursive: true });
  writeFileSync(path, unitText({ command, opts, userManager: opts.userService }, defaultName), { mode: 0o644 });
  const unit = `${opts.name}.service`;
  for (const step of [["daemon-reload"], ["enable", ...(opts.now ? ["--now"] : []), unit]]) {
    const r = systemctl(opts, step);
    if (!r.ok) {
      removeUnit(opts, path, unit);
      throw new DaemonError(
        "START_FAILED",
        `Cannot install ${unit}: systemctl ${
          step.join(" ")
        } failed: ${r.output}; removed ${path} again (see journalctl -u ${opts.name})`,
      );
    }
  }
  console.log(
    `${opts.name}: installed ${path}, enabled${
      opts.now ? " and started" : ` (start it: systemctl ${opts.userService ? "--user " : ""}start ${opts.name})`
    }`,
  );
}

function removeUnit(opts: RunnerOptions, path: string, unit: string): void {
  systemctl(opts, ["disable", "--now", unit]);
  host.remove(path);
  systemctl(opts, ["daemon-reload"]);
  systemctl(opts, ["reset-failed", unit]);
}

/** `--uninstall-service`: stops, disables and removes a unit `--install-service` wrote. */
export function uninstallService(opts: RunnerOptions, command: string[]): void {
  requireSystemd(opts, command);
  const path = unitPath(opts);
  if (!host.exists(path)) {
    throw new DaemonError(
      "NO_INPUT",
      `Cannot uninstall: no ${path}: nothing to remove (another --name, or --user-service?)`,
    );
  }
  if (!host.readText(path).startsWith(MARK)) {
    throw new DaemonError(
      "USAGE",
      `Cannot uninstall ${path}: daemonic did not write it: remove it with systemctl disable --now and rm`,
    );
  }
  if (!opts.userService && host.uid() !== 0) {
    throw new DaemonError("NO_PERMISSION", `Cannot uninstall ${path}: it needs root: run it with sudo`);
  }
  removeUnit(opts, path, `${opts.name}.service`);
  console.log(`${opts.name}: stopped, disabled and removed ${path}`);
}
