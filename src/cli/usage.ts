/**
 * `--help` of a built daemon and the README's options table, both written from the option table
 * (option_table.ts): grouped, each line within the terminal's width (80 columns when not a terminal).
 *
 * @module
 */
import { ACTIONS, type Group, type OptionRow, OPTIONS, PATHS } from "./option_table.ts";

/** Where the help column starts. */
const INDENT = 24;

/** `text` broken into lines of at most `width` columns, every line after the first indented by `indent`. */
export function wrap(text: string, width: number, indent = 0): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = " ".repeat(indent) + word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}

/** One flag's entry: its names left, its help right (below, when the names are wider than the column). */
function entry(names: string, help: string, width: number): string[] {
  const left = `  ${names}`;
  const body = wrap(help, width - INDENT).map((l) => " ".repeat(INDENT) + l);
  if (left.length <= INDENT - 2) body[0] = left.padEnd(INDENT) + body[0].trimStart();
  else body.unshift(left);
  return body;
}

const flagNames = (row: { name: string; short?: string; arg?: string }) =>
  `${row.short ? `-${row.short}, ` : "    "}--${row.name}${row.arg ? ` ${row.arg}` : ""}`;
const helpOf = (row: OptionRow, name: string) =>
  `${row.help}${row.default ? ` (default: ${row.default.replace("the executable's base name", name)})` : ""}`;

const GROUPS: readonly Group[] = ["Files and identity", "Start and stop", "Supervision", "Logs", "systemd units"];

/** A titled paragraph, wrapped. */
function section(title: string, text: string, width: number): string[] {
  return ["", `${title}:`, ...wrap(text, width - 2, 2).map((l, i) => i === 0 ? `  ${l}` : l)];
}

/**
 * The usage text of a compiled daemon (`--help`), each line at most `width` columns (at least 60).
 *
 * @example
 * ```ts
 * import { usage } from "./usage.ts";
 * console.log(usage("mydaemon").split("\n")[0]); // Usage: mydaemon [action] [options] [-- args for the entry]
 * ```
 */
export function usage(name: string, width = 80): string {
  const w = Math.max(60, Math.min(width, 120));
  const lines = [
    `Usage: ${name} [action] [options] [-- args for the entry]`,
    "",
    "Actions (one at most; none runs the entry in the foreground):",
  ];
  for (const action of ACTIONS) lines.push(...entry(flagNames(action), action.help, w));
  for (const group of GROUPS) {
    lines.push("", `${group}:`);
    for (const row of OPTIONS.filter((o) => o.group === group)) {
      lines.push(...entry(flagNames(row), helpOf(row, name), w));
    }
  }
  lines.push("", "Examples:");
  for (const [command, what] of EXAMPLES) {
    lines.push(...entry(command.replaceAll("NAME", name), what, w).map((l) => l.trimEnd()));
  }
  lines.push(...section("Signals", SIGNALS, w), ...section("Exit codes", EXIT_CODES, w));
  return lines.join("\n");
}

const EXAMPLES: readonly [string, string][] = [
  ["./NAME -- 8080", "run in the foreground (Ctrl-C stops it)"],
  ["./NAME --daemon --log-file app.log -- 8080", "detach; print the pid once ready"],
  ["./NAME --daemon --workers 4 -- 8080", "a master and 4 workers on port 8080"],
  ["./NAME --status; ./NAME --restart; ./NAME --stop", "the daemon started above, found by its name"],
  ["sudo ./NAME --install-service --now --user nobody -- 80", "a systemd service on port 80, the entry as nobody"],
];

const SIGNALS = "TERM/INT stop (the entry's onShutdown hooks run); HUP reload (--reload: a rolling restart from " +
  "disk; one process: the onReload hooks); QUIT graceful stop; TTIN/TTOU one worker more/less; URG (USR1 too on " +
  "Bun) reopen the log; USR2 upgrade (--upgrade): a master starts a new master from the binary on disk and hands " +
  "over, then the old one leaves.";

const EXIT_CODES = "0 ok; 64 usage; 66 entry, directory, env file or log missing; 67 no such --user or --group; " +
  "69 start-up failed (--reload, --upgrade: the new version did not start, the old one serves on); 73 cannot create " +
  "the pid or log file; " +
  "75 already running; 77 not permitted; 7 not running (--reload, --upgrade, --reopen-logs, --hold-logs); " +
  "--status: 0 running, 1 dead, 3 stopped, 4 unknown.";

/** A cell of a Markdown table: pipes escaped. */
const cell = (text: string) => text.replaceAll("|", "\\|");

/**
 * The README's options table: every flag of the table, with its help and default, as `--help` has them.
 *
 * @example
 * ```ts
 * import { optionsMarkdown } from "./usage.ts";
 * console.log(optionsMarkdown().split("\n")[0]); // | option | meaning | default |
 * ```
 */
export function optionsMarkdown(): string {
  const rows = [
    ...ACTIONS.map((a) => `| \`${flagNames(a).trim()}\` | ${cell(a.help)} | |`),
    ...GROUPS.flatMap((g) => OPTIONS.filter((o) => o.group === g)).map((o) =>
      `| \`${flagNames(o).trim()}\` | ${cell(o.help)} | ${cell(o.default ?? "")} |`
    ),
  ];
  return ["| option | meaning | default |", "| --- | --- | --- |", ...rows].join("\n");
}

/** A flag or command of the `daemonic` tool, listed as the runner's are. */
type Row = { name: string; short?: string; arg?: string; help: string };

const BUILD_FLAGS: readonly Row[] = [
  { name: "output", short: "o", arg: "OUTPUT", help: "the executable to write (required)" },
  { name: "runtime", arg: "bun|deno", help: "the runtime embedded in it (default: bun; deno honours DENORT_BIN)" },
  {
    name: "target",
    arg: "TARGET",
    help: "Bun only: linux-x64, linux-x64-baseline, linux-arm64, linux-x64-musl or linux-arm64-musl (default: this " +
      "machine's)",
  },
  {
    name: "image",
    arg: "NAME:TAG",
    help: "write a container image archive (podman load, docker load) to OUTPUT instead: the executable as /app, " +
      "the libraries it needs, nothing else",
  },
  { name: "image-user", arg: "UID[:GID]", help: "with --image: the user it runs as (default: 65532:65532, nonroot)" },
  { name: "help", short: "h", help: "this text" },
];

/**
 * `daemonic --help` (no `command`) or `daemonic build --help`, each line at most `width` columns.
 *
 * @example
 * ```ts
 * import { toolUsage } from "./usage.ts";
 * console.log(toolUsage("build").split("\n")[0]); // Usage: daemonic build ENTRY -o OUTPUT [options]
 * ```
 */
export function toolUsage(command?: "build", width = 80): string {
  const w = Math.max(60, Math.min(width, 120));
  if (command === "build") {
    return [
      "Usage: daemonic build ENTRY -o OUTPUT [options]",
      "",
      ...wrap(
        "Compiles ENTRY (any Bun or Deno script) and the runner into one executable; run it with --help for its own " +
          "options.",
        w,
      ),
      "",
      "Options:",
      ...BUILD_FLAGS.flatMap((f) => entry(flagNames(f), f.help, w)),
      "",
      "Examples:",
      ...entry("daemonic build server.ts -o mydaemon", "then ./mydaemon --daemon -- 8080", w),
      ...entry("daemonic build server.ts -o app --target linux-arm64", "for a Raspberry Pi", w),
      ...entry("daemonic build server.ts --image web:1 -o web.tar", "then podman load -i web.tar", w),
    ].join("\n");
  }
  const commands: [string, string][] = [
    ["build ENTRY -o OUTPUT", "compile ENTRY and the runner into one executable (see daemonic build --help)"],
    ["run ENTRY [options] [-- args]", "run ENTRY under the runner without compiling (see daemonic run ENTRY --help)"],
    ["ls [--json]", "every daemon of this user (as ./mydaemon --list)"],
    ["-V, --version", "the version"],
    ["-h, --help", "this text"],
  ];
  return [
    "Usage: daemonic COMMAND [arguments]",
    "",
    "Commands:",
    ...commands.flatMap(([names, help]) => entry(names, help, w)),
    "",
    "Examples:",
    ...entry("npx daemonic build server.ts -o mydaemon", "one executable for server.ts", w),
    ...entry("npx daemonic run server.ts --daemon -- 8080", "the same runner, not compiled", w),
  ].join("\n");
}

/**
 * The README's table of which path applies which option (option_table.ts's `paths`): ✓ applied, ✗ refused
 * with one line and exit 64, – not a setting an upgraded master could take.
 *
 * @example
 * ```ts
 * import { pathsMarkdown } from "./usage.ts";
 * console.log(pathsMarkdown().split("\n")[0].startsWith("| option | foreground |")); // true
 * ```
 */
export function pathsMarkdown(): string {
  const mark = { applied: "✓", refused: "✗", "n/a": "–" } as const;
  const rows = OPTIONS.map((o) => `| \`--${o.name}\` | ${PATHS.map((p) => mark[o.paths[p]]).join(" | ")} |`);
  return [`| option | ${PATHS.join(" | ")} |`, `| --- |${" :-: |".repeat(PATHS.length)}`, ...rows].join("\n");
}
