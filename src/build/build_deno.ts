/**
 * `daemonic build --runtime deno` beyond the compile itself: the entry's module graph checked first, and
 * why it failed in one line that names the fix: deno missing, `deno compile` without its denort runtime,
 * or the entry not compiling (its own error, file and line).
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { dirname } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { DaemonError } from "../errors.ts";

/** What the compiler's run left: spawnSync's result. */
export interface CompilerRun {
  status: number | null;
  stdout?: string;
  stderr?: string;
  error?: Error & { code?: string };
}

/** The compiler's error text without colour, backtraces and blank lines. */
function errorLines(run: CompilerRun): string[] {
  const text = `${run.stderr ?? ""}\n${run.stdout ?? ""}`.replace(/\x1b\[[0-9;]*m/g, "");
  return text.split(/\nStack backtrace:[^]*?(?=\n\S|$)/)[0].split("\n").map((l) => l.trim()).filter(Boolean);
}

/** `at file:///dir/x.ts:3:5` as `/dir/x.ts:3:5`. */
function where(lines: string[]): string {
  const at = lines.map((l) => /^at (file:\/\/\S+)$/.exec(l)?.[1]).find(Boolean);
  if (!at) return "";
  const [, url, position] = /^(.*?)((?::\d+){1,2})$/.exec(at) ?? [at, at, ""];
  return ` at ${fileURLToPath(url)}${position}`;
}

/**
 * The error for a `deno compile` of `entry` into `output` that failed (`deno` the command that ran, with
 * `denortBin` the `DENORT_BIN` it was given).
 *
 * @example
 * ```ts
 * import { denoCompileFailure } from "./build_deno.ts";
 * const stderr = "error: SyntaxError: Expression expected\n    at file:///srv/app.ts:1:11\n";
 * const err = denoCompileFailure({ status: 1, stderr }, "deno", "/srv/app.ts", "/srv/app");
 * console.log(err.message);
 * // Cannot build /srv/app: /srv/app.ts does not compile: SyntaxError: Expression expected at /srv/app.ts:1:11
 * ```
 */
export function denoCompileFailure(
  run: CompilerRun,
  deno: string,
  entry: string,
  output: string,
  denortBin?: string,
): DaemonError {
  const fail = (why: string) => new DaemonError("BUILD_FAILED", `Cannot build ${output}: ${why}`);
  if (run.error?.code === "ENOENT") {
    return fail(
      `deno is not installed (no ${deno} on PATH): add it to your project with npm i -D deno (or install Deno), ` +
        `then build again`,
    );
  }
  if (run.error) return fail(`${deno} could not be run: ${run.error.message}`);
  const lines = errorLines(run);
  // "error: Writing deno compile executable …", then "Caused by:" and numbered causes, the root one last.
  const causes = lines.filter((l) => /^\d+: /.test(l)).map((l) => l.replace(/^\d+: /, ""));
  if (causes.some((c) => /denort|^Setting up base binary|^Writing binary bytes/.test(c))) {
    const first = causes.find((c) => !/^Setting up base binary/.test(c)) ?? "";
    const root = causes.at(-1)!;
    const cause = first.includes("://") || first === root ? root : `${first}: ${root}`;
    const url = /\((https:\/\/dl\.deno\.land\/\S+?\.zip)\)/.exec(first)?.[1];
    const have = denortBin
      ? `DENORT_BIN=${denortBin} is not a usable denort`
      : "deno compile could not download its denort runtime";
    const fetch = url ? ` (fetch it where the network allows: ${url})` : "";
    return fail(`${have} (${cause}): set DENORT_BIN to a denort binary of this Deno's version${fetch}`);
  }
  const message =
    (lines.find((l) => /^error:/i.test(l))?.replace(/^error:\s*/i, "") ?? lines.at(-1) ?? `exit ${run.status}`)
      .replace(/file:\/\/[^"'\s]+/g, (url) => fileURLToPath(url)).replace(/\.$/, "");
  return fail(`${entry} does not compile: ${message}${where(lines)}`);
}

/**
 * Loads the entry's module graph (`deno cache`: parse and resolve, no type check), throwing the entry's own
 * error. `deno compile` cannot: the runner imports the entry dynamically, so its errors would wait for run
 * time, in the built binary.
 *
 * @example
 * ```ts ignore
 * // ignore: it runs deno (test/build.test.ts does, through daemonic build)
 * import { checkDenoEntry } from "./build_deno.ts";
 * checkDenoEntry("deno", "/srv/app.ts", "/srv/app", undefined);
 * ```
 */
export function checkDenoEntry(deno: string, entry: string, output: string, denortBin: string | undefined): void {
  const run = spawnSync(deno, ["cache", "--quiet", entry], {
    encoding: "utf8",
    cwd: dirname(entry),
    env: { ...process.env, NO_COLOR: "1" },
  });
  if (run.error || run.status !== 0) throw denoCompileFailure(run, deno, entry, output, denortBin);
}
