/**
 * Accepted means applied: every option of the table (src/cli/option_table.ts) on every path a daemon runs —
 * foreground, --daemon (keep-alive), --no-keep-alive, --workers, --restart, a systemd unit, an upgraded
 * master — is applied there or refused with one line and exit 64, as its row's `paths` say. Generated from
 * the table: a new option is checked on every path the moment it has a row. No process is started; the
 * end-to-end checks of the same cells are in service.test.ts (unit), keepalive.test.ts and operate.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DaemonError } from "../src/errors.ts";
import { type OptionRow, OPTIONS, type Path, PATHS, type RunnerOptions } from "../src/cli/option_table.ts";
import { checkRules as checkRulesOf, parseRunnerArgs } from "../src/cli/options.ts";
import { mergeRemembered } from "../src/cli/remembered.ts";
import { unitText } from "../src/cli/service.ts";
import { validStage, withDefaults } from "../src/stage.ts";

const parse = (argv: string[]) => parseRunnerArgs(argv, { name: "app", baseDir: "/srv" });

/** The command line of each path, before the option under test. */
const BASE: Record<Exclude<Path, "upgrade">, string[]> = {
  foreground: [],
  daemon: ["--daemon"],
  "no-keep-alive": ["--daemon", "--no-keep-alive"],
  workers: ["--daemon", "--workers", "2"],
  restart: ["--restart"],
  unit: ["--install-service"],
};
/** What an option needs beside it to mean anything (a rule refuses it alone). */
const NEEDS: Record<string, string[]> = { group: ["--user", "nobody"] };

const flagArgs = (row: OptionRow) => [...(NEEDS[row.name] ?? []), `--${row.name}`, ...(row.arg ? [row.example] : [])];
/** The setting the example gives. */
function expected(row: OptionRow): unknown {
  if (!row.arg) return !row.negates;
  const value = row.parse!(row.example, row.name, "/srv");
  return row.multiple ? [value] : value;
}
const unit = (opts: RunnerOptions) =>
  unitText({ command: ["/usr/local/bin/app"], opts, userManager: opts.userService }, "app");
const directive = (text: string, name: string) => text.split("\n").find((l) => l.startsWith(name));

/** Asserts `row` is applied on `path`: its setting reaches the process, the stage, the merge or the unit. */
function assertApplied(row: OptionRow, path: Exclude<Path, "upgrade">): void {
  const opts = parse([...BASE[path], ...flagArgs(row)]);
  assert.deepEqual(opts[row.key], expected(row), `--${row.name} on ${path}: not set`);
  if (path === "unit") return assertInUnit(row, opts);
  if (row.setting) {
    assert.deepEqual(
      withDefaults(opts)[row.key as keyof ReturnType<typeof withDefaults>],
      expected(row),
      `--${row.name}: not in the stage`,
    );
  }
  if (path === "restart" && row.setting) {
    // Given now: it wins over the remembered value; not given: the remembered value comes back.
    const other = { ...withDefaults(parse(["--daemon"])), pidFile: opts.pidFile };
    assert.deepEqual(
      mergeRemembered(opts, { pidFile: opts.pidFile, settings: other })[row.key],
      expected(row),
      `--restart --${row.name}: the remembered value won`,
    );
    const started = withDefaults(parse(["--daemon", ...flagArgs(row)]));
    const again = mergeRemembered(parse(["--restart"]), { pidFile: started.pidFile, settings: started });
    assert.deepEqual(again[row.key], expected(row), `--${row.name}: not remembered by --restart`);
  }
}

function assertInUnit(row: OptionRow, opts: RunnerOptions): void {
  const text = unit(opts), plain = unit(parse(BASE.unit));
  const execStart = directive(text, "ExecStart=")!;
  if (row.unit === "exec") {
    assert.ok(execStart.includes(`--${row.name}`), `--${row.name} is not in ${execStart}`);
  } else if (row.unit.endsWith("=")) {
    const line = directive(text, row.unit);
    assert.ok(line && line !== directive(plain, row.unit), `--${row.name}: ${row.unit} is ${line} as without it`);
  } else if (row.name === "user-service") {
    assert.notEqual(text, plain, `--${row.name}: the unit is the same as without it`);
  } // --now: what installService does besides the text (systemctl enable --now), checked in service.test.ts
}

/** Asserts `row` is refused on `path` with one line naming it, exit 64. */
function assertRefused(row: OptionRow, path: Exclude<Path, "upgrade">): void {
  const argv = [...BASE[path], ...flagArgs(row)];
  assert.throws(() => parse(argv), (err: unknown) => {
    assert.ok(err instanceof DaemonError, String(err));
    assert.equal(err.exitCode, 64);
    assert.doesNotMatch(err.message, /\n/);
    assert.match(
      err.message,
      new RegExp(`--${row.name}\\b`),
      `the refusal of ${argv.join(" ")} does not name --${row.name}`,
    );
    return true;
  }, `${argv.join(" ")} was accepted, the table says refused`);
}

/** Asserts an upgraded master gets `row`'s setting: the stage the old master hands over keeps it and is
 * accepted, and a stage with a value the option could not have set is refused. */
function assertUpgraded(row: OptionRow): void {
  const settings = withDefaults(parse(["--daemon", ...flagArgs(row)]));
  const stage = { ...settings, role: "daemon", command: { path: "/usr/local/bin/app", args: [], cwd: "/" } };
  const taken = validStage(JSON.parse(JSON.stringify(stage)));
  assert.ok(taken, `the stage with --${row.name} is refused`);
  assert.deepEqual((taken as unknown as Record<string, unknown>)[row.key], expected(row));
  const wrong = !row.arg ? "yes" : row.multiple ? [7] : typeof expected(row) === "number" ? "x" : 7;
  assert.equal(
    validStage({ ...stage, [row.key]: wrong }),
    undefined,
    `a stage with ${row.key}: ${JSON.stringify(wrong)} is accepted`,
  );
}

describe("every option × every path: applied, or refused with one line and exit 64", () => {
  for (const row of OPTIONS) {
    for (const path of PATHS) {
      const cell = row.paths[path];
      test(`--${row.name} on ${path}: ${cell}`, () => {
        if (path === "upgrade") {
          if (cell === "applied") return assertUpgraded(row);
          assert.equal(cell, "n/a", "an upgraded master takes no flags: its settings come in the stage");
          return assert.equal(
            row.setting,
            false,
            `--${row.name} is a daemon setting: say what an upgraded master does with it`,
          );
        }
        assert.notEqual(cell, "n/a", `${path} takes flags: say whether --${row.name} is applied or refused there`);
        return cell === "applied" ? assertApplied(row, path) : assertRefused(row, path);
      });
    }
  }
});

describe("cross-flag rules after --restart merged the remembered settings", () => {
  test("--restart --worker-timeout of a daemon started with --no-keep-alive is refused, not dropped", () => {
    const started = withDefaults(parse(["--daemon", "--no-keep-alive"]));
    const merged = mergeRemembered(parse(["--restart", "--worker-timeout", "5"]), {
      pidFile: started.pidFile,
      settings: started,
    });
    assert.equal(merged.keepAlive, false);
    // remembered() checks the rules on the merge; the same check, without a registry:
    assert.throws(() => checkRulesOf(merged), /Invalid --worker-timeout with --no-keep-alive/);
  });
});
