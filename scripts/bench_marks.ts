/**
 * Where each process's milliseconds go, step by step: each way of starting runs a few times with
 * `DAEMONIC_TRACE=FILE` (src/trace.ts), whose marks — the runtime's own clock at each of the runner's steps —
 * are cut into one row per step of each process, medians. A process's first row runs from what started it (the
 * bench's launch, or its parent's last mark before it) to its runtime's time origin: exec, the runtime's own
 * start and /bin/sh between them. The last row runs to what the bench saw: the first connect, or the exit.
 * A Deno process's marks say whether it had loaded Deno's Node compatibility layer by then: the table says, per
 * process, the step by which it was loaded (or that it never was).
 *
 * @module
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { lastInt, listeners, median, record, runSync, start, stopPid, tail, waitConnect } from "./bench_proc.ts";

/** What src/trace.ts appends to a Deno process's marks once its Node compatibility layer is loaded. */
const NODE_LAYER = " [node layer loaded]";

interface Mark {
  pid: number;
  t: number;
  step: string;
  /** the process had loaded Deno's Node compatibility layer by this mark */
  node: boolean;
}

/** One row of one start: its key (process label and step), ms, the process's label, whether the mark at its end
 * carried the Node layer. */
interface Row {
  key: string;
  ms: number;
  proc?: string;
  node?: boolean;
}

/** Each process's label, by the role its stage names (`stage read (ROLE)`, src/runner.ts) and how many workers
 * the start has: a master's workers, a keep-alive supervisor's one entry, a `--no-keep-alive` daemon alone. */
function labels(procs: Mark[][], daemonized: boolean): string[] {
  const roles = procs.map((ms) => /stage read \((\w+)\)/.exec(ms.map((m) => m.step).join("\n"))?.[1]);
  const workers = roles.filter((r) => r === "worker").length;
  let n = 0;
  return roles.map((role) =>
    role === "worker"
      ? (workers > 1 ? `worker ${++n}` : "entry (worker)")
      : role === "daemon"
      ? (workers > 1 ? "master" : workers ? "supervisor" : "daemon")
      : daemonized
      ? "launcher"
      : "process"
  );
}

/** One start's rows. `t0` is the launch (epoch ms), `end` what the bench saw last. */
function rows(marks: Mark[], t0: number, end: number, endName: string, daemonized: boolean): Row[] {
  const byPid = new Map<number, Mark[]>();
  for (const m of marks) byPid.set(m.pid, [...byPid.get(m.pid) ?? [], m]);
  const procs = [...byPid.values()].map((ms) => ms.sort((a, b) => a.t - b.t)).sort((a, b) => a[0].t - b[0].t);
  const names = labels(procs, daemonized);
  const out: Row[] = [];
  const all = marks.filter((m) => m.step !== "runtime's time origin").sort((a, b) => a.t - b.t);
  for (const [k, ms] of procs.entries()) {
    const proc = names[k];
    const before = k === 0 ? t0 : all.filter((m) => m.pid !== ms[0].pid && m.t < ms[0].t).pop()?.t ?? t0;
    const first = `${proc}: ${k === 0 ? "launch" : "its parent's last mark"} → ${ms[0].step}`;
    out.push({ key: first, ms: ms[0].t - before, proc, node: ms[0].node });
    for (let i = 1; i < ms.length; i++) {
      out.push({ key: `${proc}: → ${ms[i].step}`, ms: ms[i].t - ms[i - 1].t, proc, node: ms[i].node });
    }
  }
  const last = all.filter((m) => m.t <= end).at(-1); // a server's marks after its first connect: readiness lag
  if (last) out.push({ key: `last mark before it → ${endName}`, ms: end - last.t });
  out.push({ key: `total: launch → ${endName}`, ms: end - t0 });
  return out;
}

function readMarks(file: string): Mark[] {
  return readFileSync(file, "utf8").trim().split("\n").map((l) => {
    const [pid, t, ...words] = l.split(" ");
    const step = words.join(" ");
    const node = step.endsWith(NODE_LAYER);
    return { pid: Number(pid), t: Number(t), step: node ? step.slice(0, -NODE_LAYER.length) : step, node };
  });
}

/** Per process, where its Node layer was first seen in each start ("" when it never was). */
type NodeSeen = Map<string, string[]>;

function noteNodeLayer(seen: NodeSeen, start: Row[]): void {
  const first = new Map<string, string>();
  for (const r of start) {
    if (r.proc === undefined) continue;
    if (!first.has(r.proc)) first.set(r.proc, "");
    if (r.node && !first.get(r.proc)) first.set(r.proc, r.key.slice(r.key.indexOf("→") + 2));
  }
  for (const [proc, step] of first) seen.set(proc, [...seen.get(proc) ?? [], step]);
}

/** "Node layer: …" per process: not loaded, or in which step (the most frequent one), in how many starts. */
function nodeLayerLines(seen: NodeSeen): string[] {
  const out: string[] = [];
  for (const [proc, steps] of seen) {
    const loaded = steps.filter(Boolean);
    if (!loaded.length) {
      out.push(`- ${proc}: Node layer not loaded`);
      continue;
    }
    const count = (s: string) => loaded.filter((x) => x === s).length;
    const step = [...new Set(loaded)].sort((a, b) => count(b) - count(a))[0];
    const some = loaded.length < steps.length ? ` in ${loaded.length} of ${steps.length} starts` : "";
    const other = count(step) < loaded.length ? `; ${loaded.length - count(step)} at other steps` : "";
    out.push(`- ${proc}: **Node layer loaded**, in the step ending at “${step}”${some}${other}`);
  }
  return out.length
    ? ["Deno's Node compatibility layer (the `node:` modules), process by process:", "", ...out, ""]
    : [];
}

const epoch = () => performance.timeOrigin + performance.now();

/** One traced start of `argv` (PORT and PIDFILE filled in): its rows; every process it started is stopped. */
async function traceOnce(name: string, argv: string[], tmp: string, port: number, i: number): Promise<Row[]> {
  const file = join(tmp, `marks-${i}`), pidFile = join(tmp, `marks-${i}.pid`);
  const args = argv.map((a) => a === "PORT" ? String(port) : a === "PIDFILE" ? pidFile : a);
  const daemonized = argv.indexOf("--daemon"); // what precedes it runs `--stop` (a binary, or `deno run … ENTRY`)
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
    if (daemonized >= 0) {
      await s.proc.exited;
      record(lastInt(s.stdout));
    }
  } finally {
    for (const p of listeners(port)) record(p);
    if (daemonized >= 0) runSync([...args.slice(0, daemonized), "--stop", "--pid-file", pidFile]);
    await stopPid(s.proc.pid);
    for (const p of listeners(port)) await stopPid(p);
  }
  if (!s.stdout && s.exit) throw new Error(`${name}: ${tail(s.stderr)}`);
  return rows(readMarks(file), t0, end!, argv.includes("PORT") ? "first connect" : "exit", daemonized >= 0);
}

/** Traces `runs` starts of each command line (PORT and PIDFILE filled in) and returns markdown lines; with
 * `nodeLayer` (Deno commands), each process's Node layer under its table. */
export async function markTrace(
  tmp: string,
  freePort: () => Promise<number>,
  cases: [string, string[]][],
  runs = 5,
  nodeLayer = false,
): Promise<string[]> {
  const out = [`### Where each process's milliseconds go (DAEMONIC_TRACE marks, medians of ${runs})`, ""];
  for (const [name, argv] of cases) {
    const all = new Map<string, number[]>();
    const seenNode: NodeSeen = new Map();
    try {
      for (let i = 0; i < runs; i++) {
        const start = await traceOnce(name, argv, tmp, await freePort(), i);
        const seen = new Map<string, number>();
        for (const { key: label, ms } of start) {
          const n = (seen.get(label) ?? 0) + 1; // a step twice in one start: kept apart
          seen.set(label, n);
          const key = n > 1 ? `${label} (#${n})` : label;
          all.set(key, [...all.get(key) ?? [], ms]);
        }
        noteNodeLayer(seenNode, start);
      }
    } catch (err) {
      out.push(`${name}: failed: ${(err as Error).message.split("\n")[0]}`, "");
      continue;
    }
    out.push(`${name}:`, "", "| step | ms |", "| --- | ---: |");
    for (const [step, xs] of all) out.push(`| ${step} | ${median(xs).toFixed(1)} |`);
    out.push("");
    if (nodeLayer) out.push(...nodeLayerLines(seenNode));
  }
  return out;
}
