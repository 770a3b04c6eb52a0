/**
 * The runner's command line: `mydaemon [action] [flags] [-- entry args]`, parsed as `node:util` parseArgs
 * does (long and short flags, `--flag=value`, `-abc` groups, `--`) from the flags option_table.ts declares;
 * not with parseArgs itself, whose `node:` import costs every Deno process its Node layer (_host.ts). Pure:
 * files and directories are checked by the roles that start a daemon (start_inputs.ts).
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { type Action, ACTIONS, DEFAULTS, type OptionRow, OPTIONS, type RunnerOptions } from "./option_table.ts";
import { fail } from "./option_values.ts";
import { runtimeDir } from "../safe_file.ts";
import { closest } from "./suggest.ts";
import { supervised as hasSupervisor, supervisionOf } from "../supervision.ts";

export type { Action, RunnerOptions } from "./option_table.ts";

type Flag = { type: "boolean" | "string"; short?: string; multiple?: boolean };
const flagOf = (row: { arg?: string; short?: string; multiple?: boolean }): Flag => ({
  type: row.arg ? "string" : "boolean",
  ...(row.short ? { short: row.short } : {}),
  ...(row.multiple ? { multiple: true } : {}),
});
/** Every flag, derived from the option table. */
export const FLAGS: Record<string, Flag> = Object.fromEntries(
  [...ACTIONS, ...OPTIONS].map((row) => [row.name, flagOf(row)]),
);
const SHORT_FLAGS = new Map(Object.entries(FLAGS).flatMap(([name, f]) => f.short ? [[f.short, name]] : []));

/** What a cross-flag rule sees: the action, the flags given, and the settings they made. */
export interface Given {
  action: Action;
  has: (flag: string) => boolean;
  opts: Omit<RunnerOptions, "action" | "given">;
}

const STARTS: readonly Action[] = ["foreground", "daemon", "restart", "install-service", "print-service"];
const starts = (g: Given) => STARTS.includes(g.action);
const inUnit = (g: Given) => g.action === "install-service" || g.action === "print-service";
/** Whether a supervisor runs apart from the entry (the policy, supervision.ts): `--workers`' master, or
 * keep-alive's (`--daemon`, `--restart`, a unit, the foreground with `--keep-alive`). */
const supervised = (g: Given) => hasSupervisor(supervisionOf(g.opts));
/** A master of N workers, whatever keep-alive says. */
const pool = (g: Given) => supervisionOf({ ...g.opts, keepAlive: true }).kind === "workers";

/** The rules between flags, in order; the first that holds refuses the command line with its message. */
export const RULES: readonly { when: (g: Given) => boolean; message: (g: Given) => string }[] = [
  {
    when: (g) => g.action === "foreground" && g.has("start-timeout"),
    message: () =>
      "Invalid --start-timeout in the foreground: it times --daemon's start; under systemd set TimeoutStartSec=, or " +
      "add --daemon",
  },
  {
    when: (g) => g.has("group") && !g.has("user"),
    message: (g) =>
      `Invalid --group '${g.opts.group}': it goes with --user, e.g. --user ${g.opts.group} --group ${g.opts.group}`,
  },
  {
    when: (g) => g.has("no-keep-alive") && pool(g),
    message: () => "Invalid --no-keep-alive with --workers: a master always restarts its workers; drop one of them",
  },
  {
    when: (g) => g.has("no-keep-alive") && g.action === "foreground",
    message: () =>
      "Invalid --no-keep-alive in the foreground: the foreground runs the entry in this process and never restarts " +
      "it; drop it",
  },
  {
    when: (g) => g.has("no-keep-alive") && g.has("keep-alive"),
    message: () => "Conflicting --keep-alive and --no-keep-alive: give one at most",
  },
  ...["worker-timeout", "max-memory", "log-timestamps", "metrics"].map((flag) => ({
    when: (g: Given) => g.has(flag) && starts(g) && !supervised(g),
    message: (g: Given) =>
      g.action !== "foreground"
        ? `Invalid --${flag} with --no-keep-alive: the supervisor does it; drop --no-keep-alive (or add --workers 1)`
        : `Invalid --${flag} without --workers in the foreground: a supervisor does it; add --keep-alive (or ` +
          `--workers 1)`,
  })),
  ...["service-user", "service-group", "user", "group"].map((flag) => ({
    when: (g: Given) => g.has(flag) && g.has("user-service") && inUnit(g),
    message: () => `Invalid --${flag} with --user-service: a user's systemd runs services as that user only`,
  })),
  {
    when: (g) => g.has("user") && g.has("service-user"),
    message: () =>
      "Invalid --user with --service-user: --user keeps root for the pid file and drops for the entry, " +
      "--service-user runs all as that user: give one",
  },
  {
    when: (g) => inUnit(g) && pool(g) && g.has("watchdog-sec"),
    message: () =>
      "Invalid --watchdog-sec with --workers: the unit runs workers under a master, which systemd's watchdog cannot " +
      "reach yet",
  },
  {
    when: (g) => inUnit(g) && g.has("log-file") && !pool(g),
    message: () =>
      "Invalid --log-file with --install-service: systemd's journal keeps the entry's output (journalctl -u NAME); " +
      "drop --log-file",
  },
];

/** `--X`'s actions, as a message lists them. */
function actionList(row: OptionRow): string {
  const names = row.with.filter((a) => a !== "foreground" && a !== "help" && a !== "version").map((a) => `--${a}`);
  const text = names.length > 1 ? `${names.slice(0, -1).join(", ")} or ${names.at(-1)}` : names[0];
  return row.with.includes("foreground") ? `${text}, or in the foreground` : text;
}

/** The hint for an unknown or misspelt flag `arg` (`--deamon`, `-daemon`). */
function unknownFlag(arg: string, name: string): never {
  const word = arg.replace(/^-+/, "").split("=")[0];
  const guess = closest(word, Object.keys(FLAGS));
  const dashes = /^-[^-]/.test(arg) && word.length > 1 ? " (long options take two dashes)" : "";
  const hint = guess ? `did you mean --${guess}?${dashes} To pass options` : "to pass options";
  fail(`Unknown option '${arg.split("=")[0]}': ${hint} to the entry, put them after --, e.g. ${name} -- --port 8080`);
}

/** Whether `-abc` is a group of our short flags (a value flag last, or followed by its value). */
function isShortGroup(arg: string): boolean {
  for (let i = 1; i < arg.length; i++) {
    const long = SHORT_FLAGS.get(arg[i]);
    if (!long) return false;
    if (FLAGS[long].type === "string") return !/^[a-z]{2,}/i.test(arg.slice(i + 1)); // -n50, not -workers
  }
  return true;
}

/**
 * Normalises argv for {@linkcode split}: `--workers -1` becomes `--workers=-1` (a value with a dash stays the
 * flag's; the row's parse names the fix); a flag whose value is missing, an unknown flag and a long flag with
 * one dash (`-daemon`) fail here naming the fix.
 */
function normalise(argv: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") return [...out, ...argv.slice(i)];
    if (/^--[^-]/.test(arg) && !(arg.slice(2).split("=")[0] in FLAGS)) unknownFlag(arg, name);
    if (/^-\w=/.test(arg) && SHORT_FLAGS.has(arg[1])) {
      fail(
        `Invalid '${arg}': a short option takes its value after a space (-n 50), or none; or write --${
          SHORT_FLAGS.get(arg[1])
        }=VALUE`,
      );
    }
    if (/^---/.test(arg) || (/^-[^-]/.test(arg) && (arg.slice(1).split("=")[0] in FLAGS || !isShortGroup(arg)))) {
      unknownFlag(arg, name);
    }
    const flag = /^--([\w-]+)$/.exec(arg)?.[1] ?? (/^-\w$/.test(arg) ? SHORT_FLAGS.get(arg[1]) : undefined);
    const next = argv[i + 1];
    if (flag === undefined || FLAGS[flag]?.type !== "string" || !(next === undefined || next.startsWith("-"))) {
      out.push(arg);
      continue;
    }
    if (next === undefined || next === "--" || /^--?[a-zA-Z]/.test(next)) {
      fail(`Missing value for --${flag}: give it one, e.g. --${flag}=VALUE (see ${name} --help)`);
    }
    out.push(`--${flag}=${next}`);
    i++;
  }
  return out;
}

type Values = Record<string, string | boolean | string[] | undefined>;

/** Splits argv normalised by {@linkcode normalise} into flag values (a `multiple` flag's as a list) and
 * positionals; a value flag takes the rest of its short group or the next argument, as parseArgs does. */
function split(args: readonly string[]): { values: Values; positionals: string[] } {
  const values: Values = {}, positionals: string[] = [];
  // `true` for a value flag given none: the caller names the fix
  const set = (flag: string, value: string | boolean) =>
    values[flag] = FLAGS[flag]?.multiple ? [...(values[flag] as string[] ?? []), value as string] : value;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") return { values, positionals: [...positionals, ...args.slice(i + 1)] };
    const long = /^--([^=]+)(?:=([^]*))?$/.exec(arg);
    const takes = (flag: string) => FLAGS[flag]?.type === "string" && i + 1 < args.length;
    if (long) set(long[1], long[2] ?? (takes(long[1]) ? args[++i] : true));
    else if (!/^-[^-]/.test(arg)) positionals.push(arg);
    else {
      for (let at = 1; at < arg.length; at++) {
        const flag = SHORT_FLAGS.get(arg[at]) ?? arg[at];
        if (FLAGS[flag]?.type !== "string") set(flag, true);
        else {
          set(flag, arg.slice(at + 1) || (takes(flag) ? args[++i] : true));
          break;
        }
      }
    }
  }
  return { values, positionals };
}

/** The default pid file for `name`: /run as root (systemd's PIDFile), a private directory otherwise. */
export function defaultPidFile(
  name: string,
  env: Record<string, string | undefined> = host.environ,
  uid = host.uid(),
): string {
  return uid === 0 ? `/run/${name}.pid` : `${runtimeDir(env, uid)}/${name}.pid`;
}

/** The settings the given flags make, every other one its default. */
function settingsOf(
  values: Record<string, string | boolean | string[] | undefined>,
  action: Action,
  name: string,
  baseDir: string,
) {
  const opts: Record<string, unknown> = {
    ...DEFAULTS,
    name,
    envFiles: [],
    lines: 10,
    json: false,
    follow: false,
    userService: false,
    now: false,
    updateEnv: false,
  };
  for (const row of OPTIONS) {
    const value = values[row.name];
    if (value === undefined) continue;
    // A daemon's own flags are taken by every action, so one set of flags serves a script's start and its
    // --status or --stop; a control action uses those it needs (--pid-file, --name, --timeout, --log-file).
    const tolerated = row.setting && !STARTS.includes(action);
    if (!row.with.includes(action) && !tolerated) fail(`Invalid --${row.name}: it only goes with ${actionList(row)}`);
    const parse = (text: string) => row.parse!(text, row.name, baseDir);
    opts[row.key] = typeof value === "boolean" ? !row.negates : Array.isArray(value) ? value.map(parse) : parse(value);
    if (row.derive && typeof value === "string") Object.assign(opts, row.derive(value));
  }
  return opts as Omit<RunnerOptions, "action" | "given" | "pidFile" | "pidFileGiven" | "args"> & { pidFile?: string };
}

/**
 * Parses the runner's argv (without the executable). Relative paths resolve against `baseDir`. Throws a
 * {@linkcode DaemonError} with code `USAGE` (exit 64) naming the fix on bad input.
 *
 * @example
 * ```ts
 * import { parseRunnerArgs } from "./options.ts";
 * const opts = parseRunnerArgs(["--daemon", "--pid-file", "app.pid", "--", "8080"], { name: "app", baseDir: "/srv" });
 * console.log(opts.action, opts.pidFile, opts.args); // daemon /srv/app.pid [ "8080" ]
 * ```
 */
export function parseRunnerArgs(argv: readonly string[], context: { name: string; baseDir?: string }): RunnerOptions {
  const { values, positionals } = split(normalise(argv, context.name));
  const bare = Object.entries(values).find(([flag, v]) => FLAGS[flag]?.type === "boolean" && typeof v === "string");
  if (bare) fail(`Option '--${bare[0]}' does not take an argument: give it without a value`);
  const empty = Object.entries(values).find(([flag, v]) => FLAGS[flag]?.type === "string" && [v].flat().includes(true));
  if (empty) {
    fail(`Missing value for --${empty[0]}: give it one, e.g. --${empty[0]}=VALUE (see ${context.name} --help)`);
  }
  const entryArgs = argv.includes("--") ? argv.slice(argv.indexOf("--") + 1) : [];
  const misplaced = entryArgs.map((a) => a.split("=")[0]).find((a) => a.startsWith("--") && a.slice(2) in FLAGS);
  if (misplaced) {
    console.error(`warning: ${misplaced} after -- goes to the entry, not to the runner: put runner flags before --`);
  }
  const chosen = ACTIONS.filter((a) => values[a.name]).map((a) => a.name);
  if (chosen.length > 1) fail(`Conflicting actions --${chosen.join(" and --")}: give one at most`);
  const action: Action = chosen[0] ?? "foreground";
  const name = typeof values.name === "string"
    ? OPTIONS.find((o) => o.name === "name")!.parse!(values.name, "name", "/") as string
    : context.name;
  const settings = settingsOf(values, action, name, context.baseDir ?? host.cwd());
  const given = new Map(
    Object.entries(values).filter(([, v]) => v !== undefined) as [string, string | boolean | string[]][],
  );
  if (argv.includes("--")) given.set("--", entryArgs);
  const opts: RunnerOptions = {
    ...settings,
    // The foreground runs the entry in itself unless --keep-alive asks for a supervisor (as a unit does).
    keepAlive: chosen.length ? settings.keepAlive : given.has("keep-alive"),
    action,
    given,
    pidFile: settings.pidFile ?? defaultPidFile(name),
    pidFileGiven: given.has("pid-file"),
    args: positionals,
  };
  checkRules(opts);
  return opts;
}

/** Throws the message of the first {@linkcode RULES} entry `opts` breaks (again after `--restart` merged in
 * the remembered settings: `--restart --worker-timeout 5` of a daemon started with `--no-keep-alive`). */
export function checkRules(opts: RunnerOptions): void {
  const view: Given = { action: opts.action, has: (flag) => opts.given.has(flag), opts };
  const broken = RULES.find((rule) => rule.when(view));
  if (broken) fail(broken.message(view));
}
