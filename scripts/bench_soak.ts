/**
 * The soak (issue 24): `--daemon --workers 2` of an HTTP entry while, every `stepMs`, one of a cycle of
 * actions hits it — `--reload`, `kill -9` of the youngest worker, TTIN, TTOU, a log rotation with
 * `--reopen-logs` — and a client connects every `probeMs`. Measures the windows without a listener (a run
 * of refused connects, from the last connect that succeeded before it to the first after it) and the
 * master's RSS, open fds and zombie children, at the start and the end once it has settled (2 workers, the
 * same for three looks in a row).
 *
 * Runs on Bun and on Deno (node: APIs only): `test/soak.test.ts` runs a minute of it on each runtime;
 * `npm run bench` (scripts/bench.ts `--soak SEC`, 300 by default; `--soak-only` for it alone) the long form.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync, renameSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import process from "node:process";

/** What the soak runs, and for how long. */
export interface SoakOptions {
  /** The runner's command line with `args` (runner flags, then `--` and the entry's arguments). */
  command: (args: string[]) => string[];
  /** The entry's arguments (after `--`); the entry must listen on `port`. */
  entryArgs: string[];
  port: number;
  /** Where the pid file and the logs go. */
  dir: string;
  seconds: number;
  stepMs?: number;
  probeMs?: number;
  /** Called with every pid the soak learns of (the master, each worker), for the caller's cleanup. */
  track?: (pid: number) => void;
}

/** One look at the master. */
export interface MasterLook {
  rssKb: number;
  fds: number;
  zombies: number;
}

/** What the soak saw. */
export interface SoakResult {
  seconds: number;
  probes: number;
  refused: number;
  /** Windows without a listener, ms each, longest first. */
  gaps: number[];
  actions: Record<string, number>;
  start: MasterLook;
  end: MasterLook;
  /** Most zombie children seen at one look during the soak. */
  zombiesMax: number;
  /** The daemon's whole log, every rotation included, oldest first. */
  log: string;
  /** Whether the master had its 2 workers again, unchanged over three looks, within 30 s of the end. */
  settled: boolean;
  /** Whether `--stop` at the end succeeded and the master is gone. */
  stopped: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function childrenOf(pid: number): number[] {
  return read(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/).filter(Boolean).map(Number);
}

/** State letter and start time (clock ticks) of `pid` from /proc/PID/stat. */
function stat(pid: number): { state: string; started: number } {
  const text = read(`/proc/${pid}/stat`);
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: f[0] ?? "", started: Number(f[19] ?? 0) };
}

function look(master: number): MasterLook {
  const rss = /VmRSS:\s+(\d+)/.exec(read(`/proc/${master}/status`));
  let fds = 0;
  try {
    fds = readdirSync(`/proc/${master}/fd`).length;
  } catch {
    // gone
  }
  return { rssKb: Number(rss?.[1] ?? 0), fds, zombies: childrenOf(master).filter((c) => stat(c).state === "Z").length };
}

/** Runs a command to its end without blocking the event loop (the probe keeps going). */
function runAsync(argv: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.on("data", (d) => out += d);
    child.stderr!.on("data", (d) => out += d);
    child.on("close", (code) => resolve({ code, out }));
    child.on("error", (err) => resolve({ code: null, out: String(err) }));
  });
}

/** Connects every `probeMs` until `stop()`; each attempt's time and whether it connected. */
function probe(port: number, probeMs: number): { stop(): Promise<{ t: number; ok: boolean }[]> } {
  const seen: { t: number; ok: boolean }[] = [];
  let running = true;
  const once = () =>
    new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.setTimeout(1000, () => socket.destroy(new Error("timeout")));
      socket.on("connect", () => (socket.destroy(), resolve(true)));
      socket.on("error", () => resolve(false));
    });
  const done = (async () => {
    while (running) {
      const t = performance.now();
      seen.push({ t, ok: await once() });
      await sleep(Math.max(0, probeMs - (performance.now() - t)));
    }
  })();
  return { stop: async () => (running = false, await done, seen) };
}

/** The windows without a listener in `seen`, ms each, longest first. */
export function gapsIn(seen: { t: number; ok: boolean }[]): number[] {
  const gaps: number[] = [];
  let lastOk: number | undefined, failing = false;
  for (const { t, ok } of seen) {
    if (!ok) failing = true;
    else {
      if (failing && lastOk !== undefined) gaps.push(t - lastOk);
      lastOk = t, failing = false;
    }
  }
  if (failing && lastOk !== undefined) gaps.push(seen[seen.length - 1].t - lastOk);
  return gaps.sort((a, b) => b - a);
}

/** Waits until the master has exactly `workers` live children, the same set for three looks 200 ms apart. */
async function settled(master: number, workers: number, ms = 30_000): Promise<boolean> {
  const end = Date.now() + ms;
  let last = "", same = 0;
  while (Date.now() < end) {
    const now = childrenOf(master).filter((c) => stat(c).state !== "Z").sort().join(",");
    same = now === last && now.split(",").filter(Boolean).length === workers ? same + 1 : 0;
    if (same >= 2) return true;
    last = now;
    await sleep(200);
  }
  return false;
}

// Every other step a kill -9 of the youngest worker; in between mostly reloads (the issue's measurement),
// and a TTIN, a TTOU, a log rotation.
const CYCLE = [
  "reload",
  "kill",
  "reload",
  "kill",
  "ttin",
  "kill",
  "reload",
  "kill",
  "ttou",
  "kill",
  "reopen",
  "kill",
] as const;

/** Runs the soak; stops the daemon at the end whatever happened. */
export async function soak(o: SoakOptions): Promise<SoakResult> {
  const stepMs = o.stepMs ?? 2000, probeMs = o.probeMs ?? 10;
  const pidFile = join(o.dir, "soak.pid"), logFile = join(o.dir, "soak.log");
  const control = (args: string[]) => o.command([...args, "--pid-file", pidFile]);
  const started = await runAsync(
    o.command(["--daemon", "--workers", "2", "--pid-file", pidFile, "--log-file", logFile, "--", ...o.entryArgs]),
  );
  const master = Number(started.out.trim().split("\n").pop());
  if (started.code !== 0 || !master) throw new Error(`the daemon did not start: ${started.out}`);
  o.track?.(master);
  const actions: Record<string, number> = {};
  let rotations = 0, zombiesMax = 0, result: SoakResult | undefined;
  try {
    if (!await settled(master, 2)) throw new Error("the workers did not settle after the start");
    const start = look(master);
    const client = probe(o.port, probeMs);
    const began = Date.now();
    for (let step = 0; Date.now() - began < o.seconds * 1000; step++) {
      const at = began + step * stepMs;
      await sleep(Math.max(0, at - Date.now()));
      const action = CYCLE[step % CYCLE.length];
      childrenOf(master).forEach((c) => o.track?.(c));
      if (action === "reload") await runAsync(control(["--reload"]));
      else if (action === "kill") {
        const live = childrenOf(master).filter((c) => stat(c).state !== "Z");
        const youngest = live.sort((a, b) => stat(b).started - stat(a).started)[0];
        if (youngest) process.kill(youngest, "SIGKILL");
      } else if (action === "ttin" || action === "ttou") {
        process.kill(master, action === "ttin" ? "SIGTTIN" : "SIGTTOU");
      } else {
        renameSync(logFile, `${logFile}.${++rotations}`); // as logrotate's create would, then its postrotate
        await runAsync(control(["--reopen-logs"]));
      }
      actions[action] = (actions[action] ?? 0) + 1;
      zombiesMax = Math.max(zombiesMax, look(master).zombies);
    }
    for (; (actions.ttin ?? 0) > (actions.ttou ?? 0); actions.ttou = (actions.ttou ?? 0) + 1) {
      process.kill(master, "SIGTTOU"); // back to 2
    }
    const seen = await client.stop();
    const seconds = (Date.now() - began) / 1000;
    const calm = await settled(master, 2);
    const end = look(master);
    const logs = [...Array.from({ length: rotations }, (_, i) => `${logFile}.${i + 1}`), logFile].filter(existsSync);
    result = {
      seconds,
      probes: seen.length,
      refused: seen.filter((s) => !s.ok).length,
      gaps: gapsIn(seen),
      actions,
      start,
      end,
      zombiesMax,
      log: logs.map(read).join(""),
      settled: calm,
      stopped: false,
    };
  } finally {
    const stop = await runAsync(control(["--stop"]));
    if (result) result.stopped = stop.code === 0 && ["", "Z", "X"].includes(stat(master).state); // gone (init reaps it)
  }
  return result;
}

/** The soak's result as markdown lines (the bench's long form). */
export function soakReport(name: string, r: SoakResult): string[] {
  const over = r.gaps.filter((g) => g > 300);
  return [
    `| ${name} | ${r.seconds.toFixed(0)} s | ${
      Object.entries(r.actions).map(([a, n]) => `${a} ${n}`).join(", ")
    } | ${r.probes} | ${r.refused} | ` +
    `${r.gaps.length} (${over.length} > 0.3 s) | ${(r.gaps[0] ?? 0).toFixed(0)} ms | ${
      (r.start.rssKb / 1024).toFixed(1)
    } → ${(r.end.rssKb / 1024).toFixed(1)} MiB | ` +
    `${r.start.fds} → ${r.end.fds} | ${r.zombiesMax} → ${r.end.zombies} |`,
  ];
}

export const SOAK_HEADER = [
  "| soak | length | actions | connects | refused | windows without a listener | longest | master RSS | master fds | zombies (max → end) |",
  "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
];
