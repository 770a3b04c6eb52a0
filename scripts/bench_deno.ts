/**
 * The bench's Deno part: a Deno user's own command (the packed package installed in a project,
 * `deno run -A npm:daemonic run ENTRY`) beside bare `deno run -A ENTRY` (scripts/bench-server-deno.ts) and bare
 * `deno run -A` of `Deno.exit(0)`; issue 21's goals from one run's medians; each process's DAEMONIC_TRACE marks,
 * with the step by which it loaded Deno's Node compatibility layer. `npm run bench -- --deno` runs only this
 * (`runDeno`); the whole bench takes its cases into its own tables and prints the marks at its end.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { userProject } from "../test/_project.ts";
import {
  type Case,
  daemonicCase,
  foregroundCase,
  measureAll,
  med,
  type Running,
  runningDaemon,
  shortCase,
  skip,
  skipped,
} from "./bench_cases.ts";
import { markTrace } from "./bench_marks.ts";
import { freePort, runSync } from "./bench_proc.ts";
import { denoGoalRows, ms, range, ratio, why } from "./bench_report.ts";

const NO_DENO = "deno not found in node_modules/.bin or on PATH";

/** The Deno entry every Deno row runs (bare, and under daemonic). */
export const denoEntry = (root: string) => join(root, "scripts", "bench-server-deno.ts");

/** A Deno user's own command: the packed package installed in a project (test/_project.ts), run as
 * `deno run -A npm:daemonic` (its deno.json only lets the bench run it from here). */
export function denoCommand(deno: string, root: string): string[] {
  return [deno, "run", "-A", "--config", userProject().config, "npm:daemonic", "run", denoEntry(root)];
}

export interface DenoServers {
  denoBare: Case;
  denoFg: Case;
  denoDaemon: Case;
  denoDaemonNk: Case;
}

/** The Deno servers, timed to ready (skipped without deno). `--daemon`'s samples also time its `--stop`. */
export function denoServers(deno: string | undefined, cli: string[], root: string, tmp: string): DenoServers {
  if (!deno) {
    return {
      denoBare: skip("bare `deno run`", NO_DENO),
      denoFg: skip("deno CLI foreground", NO_DENO),
      denoDaemon: skip("deno CLI --daemon", NO_DENO),
      denoDaemonNk: skip("deno CLI --daemon --no-keep-alive", NO_DENO),
    };
  }
  return {
    denoBare: foregroundCase("bare `deno run -A` of a `Deno.serve` entry", [deno, "run", "-A", denoEntry(root)]),
    denoFg: foregroundCase("`deno run -A npm:daemonic run ENTRY`, foreground", [...cli, "--"]),
    denoDaemon: daemonicCase("`deno run -A npm:daemonic run ENTRY --daemon` (keep-alive)", "deno", cli, tmp),
    denoDaemonNk: daemonicCase("`deno run -A npm:daemonic run ENTRY --daemon --no-keep-alive`", "denonk", cli, tmp, [
      "--no-keep-alive",
    ]),
  };
}

/** Bare `deno run -A` of `Deno.exit(0)`, and the user's `--status` of the running Deno daemon `status`. */
export function denoShorts(
  deno: string | undefined,
  cli: string[],
  root: string,
  status?: Running,
): { denoExit: Case; denoStatus: Case } {
  if (!deno) return { denoExit: skip("bare deno exit", NO_DENO), denoStatus: skip("deno `--status`", NO_DENO) };
  const exit = [deno, "run", "-A", join(root, "scripts", "bench-exit-deno.ts")];
  const name = "`deno run -A npm:daemonic run ENTRY --status` (running)";
  return {
    denoExit: shortCase("bare `deno run -A` of `Deno.exit(0)`", exit),
    denoStatus: status?.pid
      ? shortCase(name, [...cli, "--status", "--pid-file", status.pidFile])
      : skip(name, `the Deno daemon to ask did not start: ${status?.error}`),
  };
}

/** Each process's marks of the user's command, foreground, daemons and `--status`, with its Node layer. */
export async function denoMarks(cli: string[], tmp: string, runs: number): Promise<string[]> {
  const out = ["## Deno: `deno run -A npm:daemonic run ENTRY`, process by process", ""];
  const status = await runningDaemon(cli, join(tmp, "deno-marks-status.pid"));
  const d = (...extra: string[]) => [...cli, "--daemon", ...extra, "--pid-file", "PIDFILE", "--", "PORT"];
  const cases: [string, string[]][] = [
    ["Deno foreground", [...cli, "--", "PORT"]],
    ["Deno `--daemon --no-keep-alive`", d("--no-keep-alive")],
    ["Deno `--daemon` (keep-alive)", d()],
    ["Deno `--daemon --workers 2`", d("--workers", "2")],
  ];
  if (status.pid) {
    cases.push(["Deno `--status` of a running Deno daemon", [...cli, "--status", "--pid-file", status.pidFile]]);
  } else out.push(`- \`--status\` not traced: the Deno daemon to ask did not start: ${status.error}`, "");
  try {
    out.push(...await markTrace(tmp, freePort, cases, runs, true));
  } finally {
    await status.stop();
  }
  return out;
}

const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

/** The `--deno` table: each case's median, and its ratio to its bare baseline. */
function table(s: DenoServers, x: { denoExit: Case; denoStatus: Case }): string[] {
  const bare = med(s.denoBare, "ready"), exit = med(x.denoExit, "ready");
  const out = [
    "| case | median ms | min–max | launcher exits ms | × bare | bare |",
    "| --- | ---: | ---: | ---: | ---: | --- |",
  ];
  const row = (c: Case, base: number | undefined, baseName: string) => {
    const r = med(c, "ready");
    out.push(
      `| ${c.name} | ${why(c) ?? ms(r)} | ${range(c, "ready")} | ${ms(med(c, "launcher"))} | ${
        ratio(r, base)
      } | ${baseName} |`,
    );
  };
  for (const c of [s.denoBare, s.denoFg, s.denoDaemon, s.denoDaemonNk]) row(c, bare, "`deno run -A ENTRY`");
  for (const c of [x.denoExit, x.denoStatus]) row(c, exit, "`Deno.exit(0)`");
  const stop = s.denoDaemon;
  out.push(
    `| \`… --stop\` of the idle keep-alive daemon (to every process gone; informational) | ${
      why(stop) ?? ms(med(stop, "stop"))
    } | ${range(stop, "stop")} | | | |`,
  );
  return out;
}

export interface DenoInput {
  deno: string;
  root: string;
  tmp: string;
  rounds: number;
}

/** `npm run bench -- --deno`: returns the report's markdown lines. */
export async function runDeno(input: DenoInput): Promise<string[]> {
  const { deno, root, tmp, rounds } = input;
  const began = performance.now(), loadBefore = load();
  console.error("bench: deno: the packed package installed in a project (test/_project.ts)");
  const cli = denoCommand(deno, root);
  const servers = denoServers(deno, cli, root, tmp);
  console.error(`bench: deno: time to ready, ${rounds} rounds over 4 cases (+1 warm-up round)`);
  await measureAll(Object.values(servers), rounds);
  const status = await runningDaemon(cli, join(tmp, "deno-status.pid"));
  const shorts = denoShorts(deno, cli, root, status);
  console.error(`bench: deno: short commands, ${rounds * 3} rounds`);
  try {
    await measureAll([shorts.denoExit, shorts.denoStatus], rounds * 3);
  } finally {
    await status.stop();
  }
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown CPU";
  const out = [
    "## daemonic bench, Deno only (`--deno`)",
    "",
    `${navigator.hardwareConcurrency} CPUs (${cpu}), ${runSync([deno, "--version"]).stdout.split("\n")[0]}; ` +
    `${rounds} rounds round-robin (short commands ${rounds * 3}) after a warm-up round; medians; ` +
    `load average ${loadBefore} before, ${load()} after (1, 5, 15 min).`,
    "",
    ...table(servers, shorts),
    "",
    "### Goals (issue 21), from this run's medians",
    "",
    "| goal | measured | |",
    "| --- | --- | :---: |",
    ...denoGoalRows({ ...servers, ...shorts }),
    "",
  ];
  if (skipped.length) out.push("Skipped or failed:", ...skipped.map((s) => `- ${s}`), "");
  const traceRuns = Math.min(rounds, 5);
  console.error(`bench: deno: where each process's milliseconds go (DAEMONIC_TRACE marks, ${traceRuns} starts each)`);
  out.push(...await denoMarks(cli, tmp, traceRuns));
  out.push(`- the Deno part took ${((performance.now() - began) / 1000).toFixed(1)} s`);
  return out;
}
