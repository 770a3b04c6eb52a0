/**
 * The bench's throughput: wrk pinned to one CPU, the daemon free to use the others, with 1, 2 and 4 workers.
 *
 * @module
 */
import { join } from "node:path";
import {
  freePort,
  lastInt,
  listeners,
  median,
  record,
  runSync,
  start,
  stopPid,
  tail,
  waitConnect,
  which,
} from "./bench_proc.ts";

export interface Throughput {
  name: string;
  /** requests/s on "/" (a hello world: on 2 CPUs wrk itself is the limit) */
  rps?: number;
  /** requests/s on "/work" (~0.2 ms of CPU per request: the server is the limit) */
  work?: number;
  why?: string;
}

export const WRK_CPU = Math.min(1, navigator.hardwareConcurrency - 1);

async function throughput(
  bin: string,
  name: string,
  extra: string[],
  seconds: number,
  tmp: string,
  notes: string[],
): Promise<Throughput> {
  const wrk = which("wrk");
  if (!wrk) return { name, why: "wrk not installed (Debian package `wrk`)" };
  const port = await freePort();
  const pidFile = join(tmp, `wrk-${extra.join("")}.pid`);
  const l = start([bin, "--daemon", ...extra, "--pid-file", pidFile, "--", String(port)]);
  let pid: number | undefined;
  try {
    if (await l.proc.exited !== 0) throw new Error(`launcher failed: ${tail(l.stderr)}`);
    pid = lastInt(l.stdout);
    record(pid);
    listeners(port).forEach(record);
    const taskset = which("taskset");
    const pin = taskset ? [taskset, "-c", String(WRK_CPU)] : [];
    const measure = (path: string) => {
      const url = `http://127.0.0.1:${port}${path}`;
      runSync([...pin, wrk, "-t1", "-c32", "-d1s", url]); // warm-up (JIT)
      const r = runSync([...pin, wrk, "-t1", "-c32", `-d${seconds}s`, url]);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
      if (!rps) throw new Error(`wrk said: ${tail(r.stdout + r.stderr)}`);
      const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(r.stdout);
      if (errors) notes.push(`wrk against ${name} ${path}: ${errors[0]}`);
      return rps;
    };
    return { name, rps: measure("/"), work: measure("/work") };
  } catch (err) {
    return { name, why: (err as Error).message };
  } finally {
    runSync([bin, "--stop", "--pid-file", pidFile]);
    for (const p of [...(pid ? [pid] : []), ...listeners(port)]) await stopPid(p);
  }
}

/** requests/s of `--daemon` (keep-alive: the entry in one child) and with 1, 2 and 4 workers. */
export async function throughputs(
  bin: string,
  hasWorkers: boolean,
  seconds: number,
  tmp: string,
  notes: string[],
): Promise<Throughput[]> {
  const tp = [await throughput(bin, "`--daemon` (keep-alive, no workers)", [], seconds, tmp, notes)];
  for (const n of ["1", "2", "4"]) {
    const name = `\`--daemon --workers ${n}\``;
    tp.push(
      hasWorkers
        ? await throughput(bin, name, ["--workers", n], seconds, tmp, notes)
        : { name, why: "this build has no --workers" },
    );
  }
  return tp;
}

/** One mode's requests/s in {@linkcode interleavedThroughput}. */
export interface ModeThroughput {
  name: string;
  rps?: number;
  why?: string;
}

/** requests/s on "/" of the bare binary and of each way daemonic runs the same entry, all started at once and
 * measured in interleaved rounds (a warm-up round first), so load from elsewhere hits every mode alike. */
export async function interleavedThroughput(
  bin: string,
  bare: string,
  seconds: number,
  tmp: string,
  rounds = 3,
): Promise<ModeThroughput[]> {
  const modes: [string, string[] | undefined][] = [
    ["bare compiled entry", undefined],
    ["foreground", []],
    ["`--daemon --no-keep-alive`", ["--daemon", "--no-keep-alive"]],
    ["`--daemon` (keep-alive)", ["--daemon"]],
    ["`--daemon --workers 1`", ["--daemon", "--workers", "1"]],
    ["`--daemon --workers 2`", ["--daemon", "--workers", "2"]],
  ];
  const wrk = which("wrk");
  if (!wrk) return modes.map(([name]) => ({ name, why: "wrk not installed (Debian package `wrk`)" }));
  const taskset = which("taskset");
  const pin = taskset ? [taskset, "-c", String(WRK_CPU)] : [];
  const up: { name: string; port: number; pidFile?: string; pids: number[]; samples: number[]; why?: string }[] = [];
  try {
    for (const [i, [name, extra]] of modes.entries()) {
      const port = await freePort(), pidFile = extra?.includes("--daemon") ? join(tmp, `tp-${i}.pid`) : undefined;
      const argv = extra === undefined
        ? [bare, String(port)]
        : [bin, ...extra, ...pidFile ? ["--pid-file", pidFile] : [], "--", String(port)];
      const s = start(argv);
      const m = {
        name,
        port,
        pidFile,
        pids: [s.proc.pid],
        samples: [] as number[],
        why: undefined as string | undefined,
      };
      up.push(m);
      try {
        await waitConnect(port, performance.now(), name);
        if (pidFile) m.pids.push(lastInt((await s.proc.exited, s.stdout)));
        for (const p of listeners(port)) m.pids.push(p);
        m.pids.forEach(record);
      } catch (err) {
        m.why = (err as Error).message;
      }
    }
    for (let round = -1; round < rounds; round++) {
      for (const m of up.filter((m) => !m.why)) {
        const r = runSync([...pin, wrk, "-t1", "-c32", `-d${seconds}s`, `http://127.0.0.1:${m.port}/`]);
        const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
        if (!rps) m.why = `wrk said: ${tail(r.stdout + r.stderr)}`;
        else if (round >= 0) m.samples.push(rps);
      }
    }
    return up.map((m) => ({ name: m.name, rps: m.why ? undefined : median(m.samples), why: m.why }));
  } finally {
    for (const m of up) {
      if (m.pidFile) runSync([bin, "--stop", "--pid-file", m.pidFile]);
      for (const p of [...m.pids, ...listeners(m.port)]) await stopPid(p);
    }
  }
}
