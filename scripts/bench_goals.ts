/**
 * The runner's cost per process (issue 25), on two entries — the leanest (`Bun.serve` hello,
 * scripts/bench-hello.ts) and `node:http` (scripts/bench-server.ts) — each compiled bare with `daemonic build`'s
 * own flags and compiled by `daemonic build`: every way of running it round-robin with its bare build, the short
 * commands against a bare `process.exit(0)`, memory per process (RSS, PSS, private), throughput in interleaved
 * rounds, and the goal table with ✓/✗ from this run's medians.
 *
 * @module
 */
import { join } from "node:path";
import { type Case, daemonRun, foregroundRun, measureAll, med, shortRun, type Stopper } from "./bench_cases.ts";
import {
  lastInt,
  listeners,
  median,
  type Memory,
  memory,
  record,
  runSync,
  start,
  stopPid,
  tail,
} from "./bench_proc.ts";
import { interleavedThroughput, type ModeThroughput } from "./bench_wrk.ts";

export interface Entry {
  /** How the tables name it. */
  name: string;
  /** The entry script. */
  file: string;
}

export const ENTRIES = (root: string): Entry[] => [
  { name: "`Bun.serve` hello", file: join(root, "scripts", "bench-hello.ts") },
  { name: "`node:http`", file: join(root, "scripts", "bench-server.ts") },
];

/** One entry's cases and measures. */
export interface EntryRun {
  entry: Entry;
  bin: string;
  bare: string;
  bareEntry: Case;
  foreground: Case;
  daemon: Case;
  daemonNk: Case;
  workers2: Case;
  status: Case;
  tp: ModeThroughput[];
  /** The launcher's largest smaps_rollup seen while it waits for READY (polled), or why not. */
  launcherPeak?: Memory;
}

const stopper = (bin: string, pidFile: string): Stopper => async () => {
  const s = start([bin, "--stop", "--pid-file", pidFile]);
  const code = await s.proc.exited;
  return { ok: code === 0, detail: `exit ${code}: ${tail(s.stderr)}` };
};

function daemonCase(name: string, bin: string, tmp: string, tag: string, extra: string[]): Case {
  return {
    name,
    samples: [],
    run: (port, i) => {
      const pidFile = join(tmp, `${tag}-${i < 0 ? "warm" : i}.pid`);
      return daemonRun(
        [bin, "--daemon", ...extra, "--pid-file", pidFile, "--", String(port)],
        port,
        async (s) => lastInt(s.stdout),
        stopper(bin, pidFile),
      );
    },
  };
}

/** Builds `entry` both ways; returns its cases (not yet measured). */
export function prepare(
  entry: Entry,
  n: number,
  bun: string,
  daemonic: string,
  flags: string[],
  tmp: string,
  root: string,
): EntryRun {
  const bin = join(tmp, `daemon-${n}`), bare = join(tmp, `bare-${n}`);
  for (
    const argv of [[bun, join(daemonic, "src", "cli.ts"), "build", entry.file, "-o", bin], [
      bun,
      "build",
      "--compile",
      ...flags,
      entry.file,
      "--outfile",
      bare,
    ]]
  ) {
    const r = runSync(argv, root);
    if (r.status !== 0) throw new Error(`cannot build ${entry.name}: ${r.stderr}`);
  }
  const tag = (t: string) => `${t}-${n}`;
  return {
    entry,
    bin,
    bare,
    tp: [],
    bareEntry: {
      name: `${entry.name}: bare compiled entry`,
      samples: [],
      run: (port) => foregroundRun([bare, String(port)], port),
    },
    foreground: {
      name: `${entry.name}: foreground`,
      samples: [],
      run: (port) => foregroundRun([bin, "--", String(port)], port),
    },
    daemon: daemonCase(`${entry.name}: \`--daemon\` (keep-alive)`, bin, tmp, tag("ka"), []),
    daemonNk: daemonCase(`${entry.name}: \`--daemon --no-keep-alive\``, bin, tmp, tag("nk"), ["--no-keep-alive"]),
    workers2: daemonCase(`${entry.name}: \`--daemon --workers 2\``, bin, tmp, tag("w2"), ["--workers", "2"]),
    status: { name: `${entry.name}: \`--status\` (running)`, samples: [] },
  };
}

/** Polls the launcher's smaps_rollup every ms until it exits; the largest PSS seen (with its RSS and private). */
async function launcherPeak(bin: string, tmp: string, freePort: () => Promise<number>, runs: number): Promise<Memory> {
  const peaks: Memory[] = [];
  for (let i = 0; i < runs; i++) {
    const port = await freePort(), pidFile = join(tmp, `peak-${i}.pid`);
    const l = start([bin, "--daemon", "--pid-file", pidFile, "--", String(port)]);
    let peak: Memory = { rss: 0, pss: 0, priv: 0, anon: 0 };
    while (l.exit === undefined) {
      try {
        const m = memory(l.proc.pid);
        if (m.pss > peak.pss) peak = m;
      } catch {
        // Exited between the check and the read.
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    peaks.push(peak);
    for (const p of listeners(port)) record(p);
    await stopper(bin, pidFile)(0);
    for (const p of listeners(port)) await stopPid(p);
  }
  const mid = median(peaks.map((p) => p.pss));
  return peaks.find((p) => p.pss === mid) ?? peaks[0];
}

/** Measures every entry: servers round-robin (all entries in one rotation), then `--status`, the launcher's
 * memory, throughput. `exitCase` is measured in the `--status` rotation. */
export async function measureGoals(
  runs: EntryRun[],
  exitCase: Case,
  rounds: number,
  tmp: string,
  freePort: () => Promise<number>,
  wrkSeconds: number,
): Promise<void> {
  await measureAll(runs.flatMap((r) => [r.bareEntry, r.foreground, r.daemon, r.daemonNk, r.workers2]), rounds);
  const running: { bin: string; pidFile: string; pid: number }[] = [];
  try {
    for (const [n, r] of runs.entries()) {
      const pidFile = join(tmp, `status-${n}.pid`), port = await freePort();
      const l = start([r.bin, "--daemon", "--pid-file", pidFile, "--", String(port)]);
      if (await l.proc.exited !== 0) throw new Error(`--status: the daemon to ask did not start: ${tail(l.stderr)}`);
      running.push({ bin: r.bin, pidFile, pid: lastInt(l.stdout) });
      record(lastInt(l.stdout));
      listeners(port).forEach(record);
      r.status.run = () => shortRun([r.bin, "--status", "--pid-file", pidFile]);
    }
    await measureAll([exitCase, ...runs.map((r) => r.status)], rounds * 3);
  } finally {
    for (const d of running) {
      await stopper(d.bin, d.pidFile)(d.pid);
      await stopPid(d.pid);
    }
  }
  for (const r of runs) r.launcherPeak = await launcherPeak(r.bin, tmp, freePort, 3);
  for (const r of runs) r.tp = await interleavedThroughput(r.bin, r.bare, wrkSeconds, tmp);
}

const MiB = 1048576;
const f1 = (x: number | undefined) => x === undefined || Number.isNaN(x) ? "–" : x.toFixed(1);
const mb = (m: Memory | undefined, key: keyof Memory) => m ? (m[key] / MiB).toFixed(1) : "–";
const memOf = (c: Case, key: "mem" | "childMem"): Memory | undefined => {
  const xs = c.samples.map((s) => s[key]).filter((m): m is Memory => !!m);
  if (!xs.length) return undefined;
  const mid = (key: keyof Memory) => median(xs.map((m) => m[key]));
  return { rss: mid("rss"), pss: mid("pss"), priv: mid("priv"), anon: mid("anon") };
};

/** The goal table (one column per entry) and the tables it is computed from, as markdown lines. */
export function goalReport(runs: EntryRun[], exitCase: Case): string[] {
  const out: string[] = [];
  const p = (line = "") => out.push(line);
  const cols = runs.map((r) => r.entry.name);
  p(`### Time to ready, per entry (launch → first successful TCP connect; medians of ${
    runs[0].bareEntry.samples.length
  })`);
  p();
  p(`| case | ${cols.map((c) => `${c} ms | ×`).join(" | ")} | launcher exits ms |`);
  p(`| --- | ${cols.map(() => "---: | ---:").join(" | ")} | ---: |`);
  const kinds: [string, (r: EntryRun) => Case][] = [
    ["bare compiled entry", (r) => r.bareEntry],
    ["foreground", (r) => r.foreground],
    ["`--daemon --no-keep-alive`", (r) => r.daemonNk],
    ["`--daemon` (keep-alive)", (r) => r.daemon],
    ["`--daemon --workers 2`", (r) => r.workers2],
  ];
  for (const [name, pick] of kinds) {
    const cells = runs.map((r) =>
      `${f1(med(pick(r), "ready"))} | ${(med(pick(r), "ready")! / med(r.bareEntry, "ready")!).toFixed(2)}×`
    );
    p(`| ${name} | ${cells.join(" | ")} | ${runs.map((r) => f1(med(pick(r), "launcher"))).join(" / ")} |`);
  }
  p();
  p(`### Memory per process (idle, 250 ms after ready; MiB; PSS: shared pages divided among their sharers; private: pages no other`);
  p(`process maps, of which anonymous: its heaps; the rest are pages of the binary only it has touched)`);
  p();
  p(`| process | ${cols.map((c) => `${c} RSS | PSS | private | anonymous`).join(" | ")} |`);
  p(`| --- | ${cols.map(() => "---: | ---: | ---: | ---:").join(" | ")} |`);
  const rows: [string, (r: EntryRun) => Memory | undefined][] = [
    ["bare compiled entry", (r) => memOf(r.bareEntry, "mem")],
    ["foreground", (r) => memOf(r.foreground, "mem")],
    ["`--daemon` launcher (peak while it waits, polled)", (r) => r.launcherPeak],
    ["`--no-keep-alive` daemon (runs the entry)", (r) => memOf(r.daemonNk, "mem")],
    ["keep-alive supervisor", (r) => memOf(r.daemon, "mem")],
    ["keep-alive entry's process", (r) => memOf(r.daemon, "childMem")],
    ["`--workers 2` master", (r) => memOf(r.workers2, "mem")],
    ["`--workers 2` a worker", (r) => memOf(r.workers2, "childMem")],
  ];
  for (const [name, pick] of rows) {
    p(`| ${name} | ${
      runs.map((r) => ["rss", "pss", "priv", "anon"].map((k) => mb(pick(r), k as keyof Memory)).join(" | ")).join(" | ")
    } |`);
  }
  p();
  p(`### Throughput (requests/s on \`/\`, wrk pinned, interleaved rounds, median per mode)`);
  p();
  p(`| mode | ${cols.map((c) => `${c} req/s | × bare`).join(" | ")} |`);
  p(`| --- | ${cols.map(() => "---: | ---:").join(" | ")} |`);
  for (const [i, t] of runs[0].tp.entries()) {
    p(`| ${t.name} | ${
      runs.map((r) =>
        `${r.tp[i]?.rps ? r.tp[i].rps!.toFixed(0) : r.tp[i]?.why ?? "–"} | ${
          r.tp[i]?.rps && r.tp[0].rps ? (r.tp[i].rps! / r.tp[0].rps!).toFixed(3) : "–"
        }`
      ).join(" | ")
    } |`);
  }
  p();
  goalTable(p, runs, exitCase);
  return out;
}

function goalTable(p: (l?: string) => void, runs: EntryRun[], exitCase: Case): void {
  p(`### Goals (issue 25), from this run's medians`);
  p();
  p(`| goal | ${runs.map((r) => `${r.entry.name} | `).join(" | ")} |`);
  p(`| --- | ${runs.map(() => "---: | :---:").join(" | ")} |`);
  const cell = (v: number | undefined, limit: number, shown: (v: number) => string) =>
    v === undefined || Number.isNaN(v) ? "not measured | –" : `${shown(v)} | ${v <= limit ? "✓" : "✗"}`;
  const x = (v: number) => `${v.toFixed(2)}×`;
  const ratio = (r: EntryRun, c: Case) => med(c, "ready")! / med(r.bareEntry, "ready")!;
  const ready: [string, (r: EntryRun) => Case, number][] = [
    ["foreground ready ≤ 1.2× bare", (r) => r.foreground, 1.2],
    ["`--daemon --no-keep-alive` ready ≤ 2.3× bare", (r) => r.daemonNk, 2.3],
    ["`--daemon` (keep-alive) ready ≤ 3.2× bare", (r) => r.daemon, 3.2],
    ["`--daemon --workers 2` ready ≤ 3.4× bare", (r) => r.workers2, 3.4],
  ];
  for (const [text, pick, limit] of ready) {
    p(`| ${text} | ${runs.map((r) => cell(ratio(r, pick(r)), limit, x)).join(" | ")} |`);
  }
  const exit = med(exitCase, "ready");
  p(`| \`--status\` ≤ 1.3× a bare compiled \`process.exit(0)\` (${f1(exit)} ms) | ${
    runs.map((r) => cell(med(r.status, "ready")! / exit!, 1.3, x)).join(" | ")
  } |`);
  p(`| \`--stop\` of an idle \`--daemon\` ≤ 20 ms (until every process is gone) | ${
    runs.map((r) => cell(med(r.daemon, "stop"), 20, (v) => `${v.toFixed(1)} ms`)).join(" | ")
  } |`);
  const worst = (r: EntryRun) => {
    const base = r.tp[0]?.rps;
    const ratios = r.tp.slice(1).map((t) => t.rps && base ? 1 - t.rps / base : NaN);
    return ratios.length && base ? Math.max(...ratios) : undefined;
  };
  p(`| throughput within 3 % of bare in every mode (worst mode's shortfall) | ${
    runs.map((r) => cell(worst(r), 0.03, (v) => `${(v * 100).toFixed(1)} %`)).join(" | ")
  } |`);
  p(`| keep-alive supervisor's private memory ≤ 6 MiB | ${
    runs.map((r) => cell(memOf(r.daemon, "mem")?.priv, 6 * MiB, (v) => `${(v / MiB).toFixed(1)} MiB`)).join(" | ")
  } |`);
  p();
}
