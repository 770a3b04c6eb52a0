/**
 * `npm run bench -- --goals` (and the end of the whole bench): the runner's cost per process on both entries,
 * the goal table, and the DAEMONIC_TRACE marks of each way of starting, with the machine and its load.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ENTRIES, goalReport, measureGoals, prepare } from "./bench_goals.ts";
import { type Case, shortRun } from "./bench_cases.ts";
import { markTrace } from "./bench_marks.ts";
import { freePort, lastInt, record, start, stopPid } from "./bench_proc.ts";

export interface GoalsInput {
  bun: string;
  root: string;
  daemonic: string;
  flags: string[];
  tmp: string;
  rounds: number;
  wrkSeconds: number;
  bareExit: string;
}

const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

/** Runs it all; returns the report's markdown lines. */
export async function runGoals(input: GoalsInput): Promise<string[]> {
  const began = performance.now(), loadBefore = load();
  const runs = ENTRIES(input.root).map((e, n) =>
    prepare(e, n, input.bun, input.daemonic, input.flags, input.tmp, input.root)
  );
  const exitCase: Case = {
    name: "bare compiled `process.exit(0)`",
    samples: [],
    run: () => shortRun([input.bareExit]),
  };
  console.error(`bench: goals: ${input.rounds} rounds over both entries, short commands, memory, throughput`);
  await measureGoals(runs, exitCase, input.rounds, input.tmp, freePort, input.wrkSeconds);
  const loadAfter = load();
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown CPU";
  const out = [
    `## The runner's cost per process (issue 25)`,
    "",
    `${navigator.hardwareConcurrency} CPUs (${cpu}), Linux ${
      readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()
    }, bun ${Bun.version}; ` +
    `${input.rounds} rounds round-robin (short commands ${
      input.rounds * 3
    }) after a warm-up round; wrk ${input.wrkSeconds} s × 3 interleaved rounds; ` +
    `load average ${loadBefore} before, ${loadAfter} after (1, 5, 15 min).`,
    "",
    ...goalReport(runs, exitCase),
  ];
  console.error("bench: goals: where each process's milliseconds go (DAEMONIC_TRACE marks)");
  for (const r of runs) {
    const d = (...extra: string[]) => [r.bin, "--daemon", ...extra, "--pid-file", "PIDFILE", "--", "PORT"];
    const statusPid = join(input.tmp, "marks-status.pid"), port = await freePort();
    const daemon = start([r.bin, "--daemon", "--pid-file", statusPid, "--", String(port)]);
    await daemon.proc.exited;
    const pid = lastInt(daemon.stdout);
    record(pid);
    try {
      out.push(`#### ${r.entry.name} entry`, "");
      out.push(
        ...await markTrace(input.tmp, freePort, [
          ["foreground", [r.bin, "--", "PORT"]],
          ["`--daemon --no-keep-alive`", d("--no-keep-alive")],
          ["`--daemon` (keep-alive)", d()],
          ["`--daemon --workers 2`", d("--workers", "2")],
          ["`--status` of a running daemon", [r.bin, "--status", "--pid-file", statusPid]],
        ]),
      );
    } finally {
      start([r.bin, "--stop", "--pid-file", statusPid]);
      await stopPid(pid);
    }
  }
  out.push(`- the goals part took ${((performance.now() - began) / 1000).toFixed(1)} s`);
  return out;
}
