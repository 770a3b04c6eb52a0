/**
 * Where each process's milliseconds go, step by step: each way of starting runs a few times with
 * `DAEMONIC_TRACE=FILE` (src/trace.ts), whose marks — the runtime's own clock at each of the runner's steps —
 * are cut into one row per step of each process, medians. A process's first row runs from what started it (the
 * bench's launch, or its parent's last mark before it) to its runtime's time origin: exec, the runtime's own
 * start and /bin/sh between them. The last row runs to what the bench saw: the first connect, or the exit.
 *
 * @module
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { lastInt, listeners, median, record, runSync, start, stopPid, tail, waitConnect } from "./bench_proc.ts";

interface Mark {
  pid: number;
  t: number;
  step: string;
}

/** One start's rows: [label, ms]. `t0` is the launch (epoch ms), `end` what the bench saw last. */
function rows(marks: Mark[], t0: number, end: number, endName: string, daemonized: boolean): [string, number][] {
  const byPid = new Map<number, Mark[]>();
  for (const m of marks) byPid.set(m.pid, [...byPid.get(m.pid) ?? [], m]);
  const procs = [...byPid.values()].map((ms) => ms.sort((a, b) => a.t - b.t)).sort((a, b) => a[0].t - b[0].t);
  const out: [string, number][] = [];
  const all = marks.filter((m) => m.step !== "runtime's time origin").sort((a, b) => a.t - b.t);
  for (const [k, ms] of procs.entries()) {
    const role = /stage read \((\w+)\)/.exec(ms.map((m) => m.step).join("\n"))?.[1];
    const label = role === "worker"
      ? (procs.length > 3 ? "worker" : "entry (worker)")
      : role === "daemon"
      ? (procs.length > 2 ? "supervisor" : "daemon")
      : daemonized
      ? "launcher"
      : "process";
    const before = k === 0 ? t0 : all.filter((m) => m.pid !== ms[0].pid && m.t < ms[0].t).pop()?.t ?? t0;
    out.push([`${label}: ${k === 0 ? "launch" : "its parent's last mark"} → ${ms[0].step}`, ms[0].t - before]);
    for (let i = 1; i < ms.length; i++) out.push([`${label}: → ${ms[i].step}`, ms[i].t - ms[i - 1].t]);
  }
  const last = all.filter((m) => m.t <= end).at(-1); // a server's marks after its first connect: readiness lag
  if (last) out.push([`last mark before it → ${endName}`, end - last.t]);
  out.push([`total: launch → ${endName}`, end - t0]);
  return out;
}

const epoch = () => performance.timeOrigin + performance.now();

/** Traces `runs` starts of each command line (PORT and PIDFILE filled in) and returns markdown lines. */
export async function markTrace(
  tmp: string,
  freePort: () => Promise<number>,
  cases: [string, string[]][],
  runs = 5,
): Promise<string[]> {
  const out = [`### Where each process's milliseconds go (DAEMONIC_TRACE marks, medians of ${runs})`, ""];
  for (const [name, argv] of cases) {
    const all = new Map<string, number[]>();
    for (let i = 0; i < runs; i++) {
      const port = await freePort(), file = join(tmp, `marks-${i}`), pidFile = join(tmp, `marks-${i}.pid`);
      const args = argv.map((a) => a === "PORT" ? String(port) : a === "PIDFILE" ? pidFile : a);
      rmSync(file, { force: true });
      const t0 = epoch();
      const s = start(args, { ...process.env, DAEMONIC_TRACE: file });
      let end: number;
      try {
        if (argv.includes("PORT")) {
          await waitConnect(port, performance.now(), name);
          end = epoch();
        } else {
          await s.proc.exited;
          await new Promise((r) => setTimeout(r, 0));
          end = performance.timeOrigin + s.exitedAt!;
        }
        if (argv.includes("--daemon")) {
          await s.proc.exited;
          record(lastInt(s.stdout));
        }
      } finally {
        for (const p of listeners(port)) record(p);
        if (argv.includes("--daemon")) runSync([argv[0], "--stop", "--pid-file", pidFile]);
        await stopPid(s.proc.pid);
        for (const p of listeners(port)) await stopPid(p);
      }
      const marks = readFileSync(file, "utf8").trim().split("\n").map((l) => {
        const [pid, t, ...step] = l.split(" ");
        return { pid: Number(pid), t: Number(t), step: step.join(" ") };
      });
      const seen = new Map<string, number>();
      for (
        const [label, ms] of rows(
          marks,
          t0,
          end!,
          argv.includes("PORT") ? "first connect" : "exit",
          argv.includes("--daemon"),
        )
      ) {
        const n = (seen.get(label) ?? 0) + 1; // a step twice in one start (two workers): kept apart
        seen.set(label, n);
        const key = n > 1 ? `${label} (#${n})` : label;
        all.set(key, [...all.get(key) ?? [], ms]);
      }
      if (!s.stdout && s.exit) throw new Error(`${name}: ${tail(s.stderr)}`);
    }
    out.push(`${name}:`, "", "| step | ms |", "| --- | ---: |");
    for (const [step, xs] of all) out.push(`| ${step} | ${median(xs).toFixed(1)} |`);
    out.push("");
  }
  return out;
}
