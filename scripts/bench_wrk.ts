/**
 * The bench's throughput: wrk pinned to one CPU, the daemon free to use the others, with 1, 2 and 4 workers.
 *
 * @module
 */
import { join } from "node:path";
import { lastInt, listeners, record, runSync, start, stopPid, tail, which, freePort } from "./bench_proc.ts";

export interface Throughput {
  name: string;
  /** requests/s on "/" (a hello world: on 2 CPUs wrk itself is the limit) */
  rps?: number;
  /** requests/s on "/work" (~0.2 ms of CPU per request: the server is the limit) */
  work?: number;
  why?: string;
}

export const WRK_CPU = Math.min(1, navigator.hardwareConcurrency - 1);

async function throughput(bin: string, name: string, extra: string[], seconds: number, tmp: string, notes: string[]): Promise<Throughput> {
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
export async function throughputs(bin: string, hasWorkers: boolean, seconds: number, tmp: string, notes: string[]): Promise<Throughput[]> {
  const tp = [await throughput(bin, "`--daemon` (keep-alive, no workers)", [], seconds, tmp, notes)];
  for (const n of ["1", "2", "4"]) {
    const name = `\`--daemon --workers ${n}\``;
    tp.push(hasWorkers ? await throughput(bin, name, ["--workers", n], seconds, tmp, notes) : { name, why: "this build has no --workers" });
  }
  return tp;
}
