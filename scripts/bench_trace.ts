/**
 * Where a start's milliseconds go, process by process: each way of starting a daemon runs a few times under
 * `strace -f --seccomp-bpf -ttt -e trace=execve,listen,exit_group`, and the kernel's timestamps of each
 * process's execve, the first listen and the launcher's exit are cut into segments (medians). strace stops
 * each new process once, so every segment that starts a process reads ~0.5–1 ms long; compare the rows
 * with each other and with the bare runtime's start in the tables above.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { listeners, median, record, start, stopPid, waitConnect, waitGone } from "./bench_proc.ts";

interface Event {
  pid: number;
  t: number;
  what: "exec" | "listen" | "exit";
  program?: string;
}

function parse(path: string): Event[] {
  const events: Event[] = [];
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const m = /^(\d+) +(\d+\.\d+) (execve|listen|exit_group)\((?:"([^"]*)")?/.exec(line);
    if (!m || /= -1/.test(line)) continue;
    const what = m[3] === "execve" ? "exec" : m[3] === "listen" ? "listen" : "exit";
    events.push({ pid: Number(m[1]), t: Number(m[2]) * 1000, what, program: m[4] });
  }
  return events;
}

/** The segments of one traced start: launcher → /bin/sh → daemon (→ its first worker) → listen → the
 * launcher's exit; for a foreground process (one execve), execve → listen, or → exit when it never listens. */
function segments(events: Event[]): [string, number][] {
  const execs = events.filter((e) => e.what === "exec");
  const first = execs[0], listen = events.find((e) => e.what === "listen");
  const exit = events.find((e) => e.what === "exit" && e.pid === first?.pid);
  if (!first) return [];
  if (execs.length === 1) {
    return listen ? [["execve → listens", listen.t - first.t]] : exit ? [["execve → exits", exit.t - first.t]] : [];
  }
  const sh = execs.find((e) => e.program === "/bin/sh"),
    daemon = execs.find((e) => e.t > (sh ?? first).t && e.program !== "/bin/sh");
  if (!sh || !daemon || !listen || !exit) return [];
  const worker = execs.find((e) => e.pid === listen.pid && e !== daemon);
  const out: [string, number][] = [["launcher: its execve → spawns /bin/sh", sh.t - first.t], [
    "/bin/sh: its execve → execve of the daemon",
    daemon.t - sh.t,
  ]];
  if (worker) {
    const firstWorker = execs.find((e) => e.t > daemon.t)!;
    out.push(["daemon (supervisor): its execve → its first worker's execve", firstWorker.t - daemon.t]);
    out.push(["worker (runs the entry): its execve → listens (the first to)", listen.t - worker.t]);
  } else {
    out.push(["daemon (runs the entry): its execve → listens", listen.t - daemon.t]);
  }
  out.push(["listen → the launcher exits (READY passed up)", exit.t - listen.t]);
  out.push(["total: launcher's execve → listen", listen.t - first.t]);
  return out;
}

/** Traces `runs` starts of each command line and returns markdown lines. A command line with `--daemon` is
 * stopped by the pid its launcher printed; any other by the pids listening on its port. */
export async function startupTrace(
  strace: string | undefined,
  tmp: string,
  freePort: () => Promise<number>,
  cases: [string, string[]][],
  runs = 5,
): Promise<string[]> {
  const out = ["### Where a start's milliseconds go (strace, medians)", ""];
  if (!strace) return [...out, "strace is not installed (Debian package `strace`): not measured", ""];
  for (const [name, argv] of cases) {
    const all = new Map<string, number[]>();
    for (let i = 0; i < runs; i++) {
      const port = await freePort(), log = join(tmp, `trace-${i}.strace`);
      const args = argv.map((a) => a === "PORT" ? String(port) : a === "PIDFILE" ? join(tmp, `trace-${i}.pid`) : a);
      const traced = start([
        strace,
        "-f",
        "-qq",
        "--seccomp-bpf",
        "-ttt",
        "-e",
        "trace=execve,listen,exit_group",
        "-o",
        log,
        ...args,
      ]);
      try {
        if (argv.includes("PORT")) await waitConnect(port, performance.now(), name);
        // strace ends once every process it follows has: the daemon is stopped by the pid its launcher printed.
        if (argv.includes("--daemon")) {
          for (let t = 0; t < 200 && !/\d\s*$/.test(traced.stdout); t++) await new Promise((r) => setTimeout(r, 10));
        }
        const pid = Number(/(\d+)\s*$/.exec(traced.stdout.trim())?.[1]);
        for (const p of [...(argv.includes("--daemon") && pid > 0 ? [pid] : []), ...listeners(port)]) {
          record(p);
          await stopPid(p);
        }
        await waitGone(traced.proc.pid, 5000);
        for (const [segment, ms] of segments(parse(log))) all.set(segment, [...all.get(segment) ?? [], ms]);
      } finally {
        await stopPid(traced.proc.pid);
      }
    }
    out.push(`${name} (${runs} runs):`, "", "| segment | ms |", "| --- | ---: |");
    for (const [segment, xs] of all) out.push(`| ${segment} | ${median(xs).toFixed(1)} |`);
    out.push("");
  }
  return out;
}
