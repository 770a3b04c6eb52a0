/**
 * What the option table gives a user to read: `--help` (grouped, within the terminal's width), the README's
 * options table (the same words), `daemonic --help` and `daemonic build --help`, and the hint for a
 * mistyped flag.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { DaemonError } from "../src/errors.ts";
import { ACTIONS, OPTIONS } from "../src/cli/option_table.ts";
import { parseRunnerArgs } from "../src/cli/options.ts";
import { optionsMarkdown, pathsMarkdown, usage } from "../src/cli/usage.ts";
import { BUN, CLI, DENO, FIXTURES, ROOT, run, RUNTIME } from "./_helpers.ts";

const parse = (argv: string[]) => parseRunnerArgs(argv, { name: "app", baseDir: "/srv" });
const words = (text: string) => text.replace(/\s+/g, " ");
/** `daemonic ARGS` on the suite's runtime. */
const daemonic = (args: string[]) =>
  run(RUNTIME === "bun" ? [BUN, CLI, ...args] : [DENO, "run", "-A", "--unstable-net", "--no-check", CLI, ...args]);

describe("--help and the README, from the option table", () => {
  test("the README's options table and its option × path table are the ones the table writes (bun scripts/readme-options.ts)", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    for (const [marker, table] of [["options-table", optionsMarkdown()], ["option-paths", pathsMarkdown()]]) {
      const block = new RegExp(`<!-- ${marker}: .*? -->\n([\\s\\S]*?)\n<!-- /${marker} -->`).exec(readme);
      assert.ok(block, `no ${marker} markers in README.md`);
      assert.equal(block[1], table, `README.md's ${marker} is stale: run bun scripts/readme-options.ts`);
    }
  });

  test("every flag of the README is in --help with the same words, and every flag of --help in the README", () => {
    const help = words(usage("app"));
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("<!-- options-table:"), readme.indexOf("<!-- /options-table -->"));
    const rows = [...section.matchAll(/^\| `((?:-\w, )?--[\w-]+)[^`]*` \| (.*?) \|.*\|$/gm)];
    const inReadme = new Set(rows.map((r) => r[1].replace(/^-\w, /, "")));
    for (const [, , meaning] of rows) {
      assert.ok(help.includes(words(meaning.replaceAll("\\|", "|"))), `--help lacks: ${meaning}`);
    }
    const inHelp = new Set(
      [...help.matchAll(/(?:^| )(--[a-z][\w-]+)(?= |$)/g)].map((m) => m[1]).filter((f) =>
        f.slice(2) in Object.fromEntries([...ACTIONS, ...OPTIONS].map((r) => [r.name, 1]))
      ),
    );
    for (const flag of inHelp) assert.ok(inReadme.has(flag), `${flag} is in --help, not in the README's table`);
    assert.equal(inReadme.size, ACTIONS.length + OPTIONS.length);
  });

  test("--help: grouped, every line within 80 columns (or the width given), with examples, signals (USR2) and exit codes", () => {
    const help = usage("mydaemon");
    for (const line of help.split("\n")) assert.ok(line.length <= 80, `${line.length} columns: ${line}`);
    for (const line of usage("mydaemon", 100).split("\n")) assert.ok(line.length <= 100, line);
    assert.ok(
      usage("mydaemon", 100).split("\n").length < help.split("\n").length,
      "a wider terminal gets no fewer lines",
    );
    for (
      const heading of [
        "Actions",
        "Files and identity",
        "Start and stop",
        "Supervision",
        "Logs",
        "systemd units",
        "Examples",
        "Signals",
        "Exit codes",
      ]
    ) {
      assert.match(help, new RegExp(`^${heading}.*:$`, "m"));
    }
    assert.match(words(help), /USR2 upgrade/);
    assert.match(words(help), /64 usage/);
    assert.match(help, /^ {2}\.\/mydaemon --daemon/m);
  });

  test("a built daemon's --help: exit 0, 80 columns when stdout is not a terminal", () => {
    const r = run(
      RUNTIME === "bun"
        ? [BUN, CLI, "run", join(FIXTURES, "server.ts"), "--help"]
        : [DENO, "run", "-A", "--unstable-net", "--no-check", CLI, "run", join(FIXTURES, "server.ts"), "--help"],
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trimEnd(), usage("server"));
  });

  test("daemonic --help and daemonic build --help: exit 0, generated the same way", () => {
    for (const args of [["--help"], ["build", "--help"], ["build", "-h"], ["help"]]) {
      const r = daemonic(args);
      assert.equal(r.status, 0, `daemonic ${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr, "");
      assert.match(
        r.stdout,
        args[0] === "build" ? /^Usage: daemonic build ENTRY -o OUTPUT/ : /^Usage: daemonic COMMAND/,
      );
      for (const line of r.stdout.split("\n")) assert.ok(line.length <= 80, line);
    }
  });
});

describe("a mistake names what was meant", () => {
  const refusal = (argv: string[]) => {
    try {
      parse(argv);
    } catch (err) {
      assert.ok(err instanceof DaemonError && err.exitCode === 64, String(err));
      return err.message;
    }
    assert.fail(`${argv.join(" ")} was accepted`);
  };

  test("an unknown flag suggests the closest known one", () => {
    assert.match(refusal(["--deamon"]), /^Unknown option '--deamon': did you mean --daemon\?/);
    assert.match(refusal(["--wokers", "2"]), /did you mean --workers\?/);
    assert.match(refusal(["--log-levle=debug"]), /Unknown option '--log-levle': did you mean --log-level\?/);
    assert.match(refusal(["--pidfile", "x"]), /did you mean --pid-file\?/);
    assert.doesNotMatch(refusal(["--port", "1"]), /did you mean/, "nothing close: no guess");
    assert.match(refusal(["--port", "1"]), /put them after --/);
  });

  test("daemonic build: a misspelt flag names the closest one, a missing -o directory is named; nothing is built", () => {
    const dir = mkdtempSync(join(tmpdir(), "daemonic-build-args-"));
    try {
      const entry = join(FIXTURES, "server.ts");
      for (
        const [args, code, message] of [
          [
            [entry, "-o", join(dir, "a"), "-image", "a:1"],
            64,
            /^Unknown option '-image' for daemonic build: did you mean --image\? \(long options take two dashes\)\n$/,
          ],
          [
            [entry, "--outptu", join(dir, "a")],
            64,
            /^Unknown option '--outptu' for daemonic build: did you mean --output\?\n$/,
          ],
          [["--hepl"], 64, /did you mean --help\?/],
          [
            [entry, "-o", join(dir, "no", "a")],
            73,
            /^Cannot write .*\/no\/a: directory .*\/no does not exist: create it or pick another -o\n$/,
          ],
        ] as const
      ) {
        const r = daemonic(["build", ...args]);
        assert.equal(r.status, code, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, message);
      }
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a long flag with one dash is recognised as such", () => {
    assert.match(
      refusal(["-daemon"]),
      /^Unknown option '-daemon': did you mean --daemon\? \(long options take two dashes\)/,
    );
    assert.match(refusal(["-workers", "2"]), /did you mean --workers\?/);
    // Groups of our short flags still work.
    assert.equal(parse(["--logs", "-fn", "5"]).lines, 5);
    assert.equal(parse(["--logs", "-n50"]).lines, 50);
    assert.equal(parse(["-dw", "2"]).workers, 2);
  });

  test("a runner flag after -- still goes to the entry, with a warning", () => {
    const warned: string[] = [];
    const original = console.error;
    console.error = (line: string) => void warned.push(line);
    try {
      assert.deepEqual(parse(["--", "--daemon", "8080"]).args, ["--daemon", "8080"]);
    } finally {
      console.error = original;
    }
    assert.deepEqual(warned, [
      "warning: --daemon after -- goes to the entry, not to the runner: put runner flags before --",
    ]);
  });
});
