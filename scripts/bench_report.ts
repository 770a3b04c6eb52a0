/**
 * The bench's report: markdown tables of one run's medians, and the goals of issue 10 with ✓/✗ computed
 * from them.
 *
 * @module
 */
import { readFileSync, statSync } from "node:fs";
import { type Case, med, type Sample } from "./bench_cases.ts";
import { runSync, SETTLE_MS } from "./bench_proc.ts";
import { type Throughput, WRK_CPU } from "./bench_wrk.ts";

type Cases = Record<
  | "bareEntry"
  | "foreground"
  | "daemon"
  | "daemonNk"
  | "workers2"
  | "ruby"
  | "ssd"
  | "pm2"
  | "denoBare"
  | "denoFg"
  | "denoTask"
  | "denoDaemon"
  | "denoDaemonNk"
  | "denoExit"
  | "denoStatus"
  | "exitCase"
  | "version"
  | "status",
  Case
>;

export interface ReportInput {
  runs: number;
  bin: string;
  bare: string;
  bareExit: string;
  deno?: string;
  notes: string[];
  skipped: string[];
  tp: Throughput[];
  sameFlags: string[];
  c: Cases;
  seconds: number;
}

const MiB = 1048576;
export const ms = (x: number | undefined) => x === undefined ? "–" : x.toFixed(1);
const mib = (bytes: number | undefined) => bytes === undefined ? "–" : (bytes / MiB).toFixed(1);
export const ratio = (x: number | undefined, base: number | undefined) =>
  x !== undefined && base ? `${(x / base).toFixed(2)}×` : "–";
const plus = (x: number | undefined, base: number | undefined) =>
  x !== undefined && base !== undefined ? `${x >= base ? "+" : ""}${((x - base) / MiB).toFixed(1)} MiB` : "–";
export const range = (c: Case, key: keyof Sample) => {
  const xs = c.samples.map((s) => s[key]).filter((x): x is number => typeof x === "number");
  return xs.length ? `${ms(Math.min(...xs))}–${ms(Math.max(...xs))}` : "";
};
const num = (v: number | string | undefined) => typeof v === "number" ? v : undefined;
const x = (v: number) => `${v.toFixed(2)}×`;
const div = (a: number | undefined, b: number | undefined) => a !== undefined && b ? a / b : undefined;
/** Why a case has no figure (skipped, or failed in every round), or undefined when it has one. */
export const why = (c: Case) =>
  c.skip
    ? `skipped: ${c.skip}`
    : c.error && !c.samples.length
    ? `failed: ${c.error.replace(/\|/g, "/").slice(0, 200)}`
    : undefined;

function readyTable(p: (l?: string) => void, c: Cases): void {
  p(`### Time to ready (launch → first successful TCP connect, polled every 1 ms)`);
  p();
  p(`| case | ready ms (median) | min–max | launcher exits ms | × its bare baseline | × Ruby |`);
  p(`| --- | ---: | ---: | ---: | ---: | ---: |`);
  const bun = med(c.bareEntry, "ready"), deno = med(c.denoBare, "ready"), ruby = med(c.ruby, "ready");
  const rows: [Case, number | undefined][] = [
    [c.bareEntry, bun],
    [c.foreground, bun],
    [c.daemon, bun],
    [c.daemonNk, bun],
    [c.workers2, bun],
    [c.ruby, bun],
    [c.ssd, bun],
    [c.pm2, bun],
    [c.denoBare, deno],
    [c.denoFg, deno],
    [c.denoTask, deno],
    [c.denoDaemon, deno],
    [c.denoDaemonNk, deno],
  ];
  for (const [k, base] of rows) {
    const r = med(k, "ready");
    p(`| ${k.name} | ${why(k) ?? ms(r)} | ${range(k, "ready")} | ${ms(med(k, "launcher"))} | ${ratio(r, base)} | ${
      ratio(r, ruby)
    } |`);
  }
  p();
  p(`Bun rows are compared with the bare compiled entry, Deno rows with bare \`deno run\` of the \`Deno.serve\` entry.`);
  p();
}

function shortTable(p: (l?: string) => void, c: Cases): void {
  p(`### Short commands (launch → exit; peak RSS: GNU time's %M, in separate runs)`);
  p();
  p(`| command | ms (median) | min–max | × bare exit | peak RSS MiB | over bare exit |`);
  p(`| --- | ---: | ---: | ---: | ---: | ---: |`);
  const t = med(c.exitCase, "ready"), m = num(c.exitCase.peak);
  const peak = (k: Case) => typeof k.peak === "string" ? k.peak : mib(k.peak);
  for (const k of [c.exitCase, c.version, c.status]) {
    const r = med(k, "ready");
    p(`| ${k.name} | ${why(k) ?? ms(r)} | ${range(k, "ready")} | ${ratio(r, t)} | ${peak(k)} | ${
      plus(num(k.peak), m)
    } |`);
  }
  p(`| daemonic \`--daemon\` launcher (until the daemon is ready) | ${ms(med(c.daemon, "launcher"))} | ${
    range(c.daemon, "launcher")
  } | | ${peak(c.daemon)} | ${plus(num(c.daemon.peak), m)} |`);
  const d = med(c.denoExit, "ready"); // Deno's rows beside bare `deno run` of `Deno.exit(0)`
  for (const k of [c.denoExit, c.denoStatus]) {
    p(`| ${k.name} | ${why(k) ?? ms(med(k, "ready"))} | ${range(k, "ready")} | ${
      ratio(med(k, "ready"), d)
    } (of deno's) | | |`);
  }
  p();
}

function stopTable(p: (l?: string) => void, c: Cases): void {
  p(`### Stop latency (idle daemon, from the stop command to every process gone)`);
  p();
  p(`| case | how | median ms | min–max |`);
  p(`| --- | --- | ---: | ---: |`);
  const how: [Case, string][] = [
    [c.daemon, "`--stop`"],
    [c.daemonNk, "`--stop`"],
    [c.workers2, "`--stop` (master and workers gone)"],
    [c.denoDaemon, "`deno run … --stop`"],
    [c.ruby, "kill -TERM pid"],
    [c.ssd, "kill -TERM pid"],
    [c.pm2, "`pm2 delete`"],
  ];
  for (const [k, h] of how) p(`| ${k.name} | ${h} | ${why(k) ?? ms(med(k, "stop"))} | ${range(k, "stop")} |`);
  p();
}

function memoryTable(p: (l?: string) => void, c: Cases): void {
  p(`### Memory (VmRSS ${SETTLE_MS} ms after ready, idle, median)`);
  p();
  p(`| process | RSS MiB | over its bare baseline |`);
  p(`| --- | ---: | ---: |`);
  const bun = med(c.bareEntry, "rss"), deno = med(c.denoBare, "rss");
  const row = (name: string, v: number | undefined, base: number | undefined) =>
    p(`| ${name} | ${mib(v)} | ${base === v ? "" : plus(v, base)} |`);
  row(c.bareEntry.name, bun, bun);
  row(c.foreground.name, med(c.foreground, "rss"), bun);
  row(`${c.daemon.name}: supervisor`, med(c.daemon, "rss"), bun);
  row(`${c.daemon.name}: the entry's process`, med(c.daemon, "childRss"), bun);
  row(c.daemonNk.name, med(c.daemonNk, "rss"), bun);
  row(`${c.workers2.name}: master`, med(c.workers2, "rss"), bun);
  row(`${c.workers2.name}: each worker`, med(c.workers2, "childRss"), bun);
  row(c.denoBare.name, deno, deno);
  row(c.denoFg.name, med(c.denoFg, "rss"), deno);
  row(`${c.denoDaemon.name}: supervisor`, med(c.denoDaemon, "rss"), deno);
  row(c.denoDaemonNk.name, med(c.denoDaemonNk, "rss"), deno);
  row(c.ruby.name, med(c.ruby, "rss"), undefined);
  p();
}

function sizeTable(p: (l?: string) => void, input: ReportInput): { size: number; sameSize: number } {
  const size = statSync(input.bin).size, sameSize = statSync(input.bare).size;
  p(`### Size`);
  p();
  p(`| binary | bytes | MB |`);
  p(`| --- | ---: | ---: |`);
  p(`| daemonic build | ${size} | ${(size / 1e6).toFixed(2)} |`);
  p(`| bare \`bun build --compile ${input.sameFlags.join(" ")}\` of the entry | ${sameSize} | ${
    (sameSize / 1e6).toFixed(2)
  } |`);
  p(`| difference (daemonic's own code) | ${size - sameSize} | ${((size - sameSize) / 1e6).toFixed(2)} |`);
  p();
  return { size, sameSize };
}

function throughputTable(p: (l?: string) => void, tp: Throughput[]): void {
  p(`### Throughput (\`taskset -c ${WRK_CPU} wrk -t1 -c32\`, wrk pinned to CPU ${WRK_CPU}, the daemon unpinned, after a 1 s warm-up)`);
  p();
  p(`| daemon | requests/s on \`/\` (hello) | requests/s on \`/work\` (~0.2 ms CPU each) |`);
  p(`| --- | ---: | ---: |`);
  for (const t of tp) {
    p(`| ${t.name} | ${t.rps ? t.rps.toFixed(0) : t.why} | ${t.work ? t.work.toFixed(0) : t.why ?? ""} |`);
  }
  p();
}

/** One goal's row of a `| goal | measured | |` table: ✓ or ✗ when measured, "not measured" otherwise. */
export function goalRow(text: string, value: number | undefined, limit: number, shown: (v: number) => string): string {
  const ok = value === undefined || Number.isNaN(value) ? undefined : value <= limit;
  return `| ${text} | ${ok === undefined ? "not measured" : shown(value!)} | ${
    ok === undefined ? "–" : ok ? "✓" : "✗"
  } |`;
}

/** The cases issue 21's Deno goals are computed from. */
export type DenoGoalCases = Pick<Cases, "denoBare" | "denoFg" | "denoDaemon" | "denoDaemonNk" | "denoStatus">;

/** Issue 21's Deno goals, rows of a goal table: a user's `deno run -A npm:daemonic` beside bare `deno run -A
 * ENTRY` (the whole bench and `--deno` alike). */
export function denoGoalRows(c: DenoGoalCases): string[] {
  const deno = med(c.denoBare, "ready");
  return [
    goalRow("Deno foreground ready ≤ 1.3× bare `deno run -A ENTRY`", div(med(c.denoFg, "ready"), deno), 1.3, x),
    goalRow(
      "Deno `--daemon` (keep-alive) ready ≤ 3.0× bare `deno run -A ENTRY`",
      div(med(c.denoDaemon, "ready"), deno),
      3.0,
      x,
    ),
    goalRow(
      "Deno `--daemon --no-keep-alive` ready ≤ 2.0× bare `deno run -A ENTRY`",
      div(med(c.denoDaemonNk, "ready"), deno),
      2.0,
      x,
    ),
    goalRow("Deno `--status` ≤ 40 ms", med(c.denoStatus, "ready"), 40, (v) => `${v.toFixed(1)} ms`),
  ];
}

function goalTable(p: (l?: string) => void, c: Cases, size: number, sameSize: number): void {
  p(`### Goals (issue 10), from this run's medians`);
  p();
  p(`| goal | measured | |`);
  p(`| --- | --- | :---: |`);
  const goal = (text: string, value: number | undefined, limit: number, shown: (v: number) => string) =>
    p(goalRow(text, value, limit, shown));
  const over = (v: number) => `+${(v / MiB).toFixed(1)} MiB`;
  const sub = (a: number | undefined, b: number | undefined) => a !== undefined && b !== undefined ? a - b : undefined;
  const bun = med(c.bareEntry, "ready");
  const exitPeak = num(c.exitCase.peak);
  const daemons: [string, Case][] = [["`--daemon`", c.daemon], ["`--daemon --no-keep-alive`", c.daemonNk]];
  goal("foreground binary ready ≤ 1.15× the bare compiled entry", div(med(c.foreground, "ready"), bun), 1.15, x);
  for (const [name, k] of daemons) {
    goal(`${name} ready ≤ 2.2× the bare compiled entry`, div(med(k, "ready"), bun), 2.2, x);
  }
  for (const [name, k] of daemons) {
    goal(`${name} ready ≤ 0.5× Ruby \`Process.daemon\``, div(med(k, "ready"), med(c.ruby, "ready")), 0.5, x);
  }
  goal("`--daemon --workers 2` ready ≤ 2.6× the bare compiled entry", div(med(c.workers2, "ready"), bun), 2.6, x);
  goal(
    "`--status` ≤ 1.2× a bare `process.exit(0)` binary",
    div(med(c.status, "ready"), med(c.exitCase, "ready")),
    1.2,
    x,
  );
  goal("`--stop` ≤ 40 ms", med(c.daemon, "stop"), 40, (v) => `${v.toFixed(1)} ms`);
  goal("peak RSS of `--version` ≤ bare exit binary + 3 MiB", sub(num(c.version.peak), exitPeak), 3 * MiB, over);
  goal(
    "peak RSS of the `--daemon` launcher ≤ bare exit binary + 3 MiB",
    sub(num(c.daemon.peak), exitPeak),
    3 * MiB,
    over,
  );
  goal(
    "RSS of the idle `--daemon --no-keep-alive` ≤ bare compiled entry + 3 MiB",
    sub(med(c.daemonNk, "rss"), med(c.bareEntry, "rss")),
    3 * MiB,
    over,
  );
  const kept = sub(med(c.daemon, "childRss"), med(c.bareEntry, "rss"));
  goal(
    "RSS of the idle `--daemon`'s entry process ≤ bare compiled entry + 3 MiB (its supervisor apart)",
    kept,
    3 * MiB,
    over,
  );
  denoGoalRows(c).forEach((row) => p(row));
  goal(
    "binary ≤ bare compile with the same flags + 0.5 MB",
    size - sameSize,
    500_000,
    (v) => `+${(v / 1e6).toFixed(2)} MB`,
  );
  p();
}

function firstLine(argv: string[]): string {
  return runSync(argv).stdout.split("\n")[0].trim() || `no ${argv[0]}`;
}

function machine(input: ReportInput): string {
  const cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown CPU";
  const kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  const deno = input.deno ? firstLine([input.deno, "--version"]) : "no deno";
  return `${navigator.hardwareConcurrency} CPUs (${cpu}), Linux ${kernel}, bun ${Bun.version}, ${deno}, ${
    firstLine(["ruby", "--version"]).split(" (")[0]
  }`;
}

/** The whole report, as markdown. */
export function report(input: ReportInput): string {
  const out: string[] = [];
  const p = (line = "") => out.push(line);
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  p(`## daemonic bench`);
  p();
  p(`${machine(input)}; ${input.runs} runs per server case, ${
    input.runs * 3
  } per short command, round-robin after one warm-up round; medians.`);
  p();
  readyTable(p, input.c);
  shortTable(p, input.c);
  stopTable(p, input.c);
  memoryTable(p, input.c);
  const { size, sameSize } = sizeTable(p, input);
  throughputTable(p, input.tp);
  goalTable(p, input.c, size, sameSize);
  if (input.skipped.length) {
    p(`Skipped or failed:`);
    for (const s of input.skipped) p(`- ${s}`);
    p();
  }
  for (const n of input.notes) p(`- ${n}`);
  p(`- load average ${load} at the end (1, 5, 15 min): other work on the machine slows every case alike, as the cases run round-robin`);
  p(`- the whole bench took ${input.seconds.toFixed(1)} s`);
  return out.join("\n");
}
