/**
 * The bench's process handling and measuring: every pid it starts is recorded and killed on the way out;
 * readiness is the first successful TCP connect; medians, round-robin rounds.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import process from "node:process";

export const READY_TIMEOUT_MS = 20_000;
export const SETTLE_MS = 250; // idle time after ready before RSS is read and --stop is timed

const recorded = new Set<number>();
export const record = (pid: number) => recorded.add(pid);

export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"; // a zombie has exited
  } catch {
    return false;
  }
}

export function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (alive(pid)) {
    if (performance.now() > deadline) return false;
    await sleep(1);
  }
  return true;
}

/** SIGTERM, then SIGKILL after 3 s; forgets the pid once it is gone. */
export async function stopPid(pid: number): Promise<void> {
  if (alive(pid)) {
    kill(pid, "SIGTERM");
    if (!await waitGone(pid, 3000)) {
      kill(pid, "SIGKILL");
      await waitGone(pid, 3000);
    }
  }
  recorded.delete(pid);
}

/** Kills every recorded pid on any way out, and runs `cleanup`. */
export function killOnExit(cleanup: () => void): void {
  process.on("exit", () => {
    for (const pid of recorded) kill(pid, "SIGKILL");
    recorded.clear();
    cleanup();
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      console.error(`bench: ${signal}: stopping every recorded process`);
      process.exit(130);
    });
  }
}

/** Pids of the processes holding a listening TCP socket on 127.0.0.1:`port` (from /proc/net/tcp). */
export function listeners(port: number): number[] {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && cols[1].endsWith(`:${hexPort}`) && cols[3] === "0A") inodes.add(`socket:[${cols[9]}]`);
    }
  }
  const pids: number[] = [];
  if (inodes.size === 0) return pids;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readdirSync(`/proc/${name}/fd`).some((fd) => inodes.has(readlinkSync(`/proc/${name}/fd/${fd}`)))) {
        pids.push(Number(name));
      }
    } catch {
      // Gone, or not ours to look at.
    }
  }
  return pids;
}

export function rss(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** A process's memory from /proc/PID/smaps_rollup: resident, proportional (shared pages divided among their
 * sharers), private (pages no other process maps: what it really costs) and, of those, anonymous (its heaps;
 * the rest are pages of the binary only it has touched), in bytes. */
export interface Memory {
  rss: number;
  pss: number;
  priv: number;
  anon: number;
}

export function memory(pid: number): Memory {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb("Rss"), pss: kb("Pss"), priv: kb("Private_Clean") + kb("Private_Dirty"), anon: kb("Anonymous") };
}

export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    const path = join(dir || ".", name);
    try {
      if (statSync(path).isFile()) return path;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => {
      socket.destroy();
      done(false);
    });
  });
}

/** Connects every 1 ms until a connect succeeds; returns when it did (performance.now()). */
export async function waitConnect(
  port: number,
  since: number,
  what: string,
  bail?: () => string | undefined,
): Promise<number> {
  for (;;) {
    if (await tryConnect(port)) return performance.now();
    const why = bail?.();
    if (why) throw new Error(`${what}: ${why}`);
    if (performance.now() - since > READY_TIMEOUT_MS) {
      throw new Error(`${what}: no connect within ${READY_TIMEOUT_MS} ms`);
    }
    await sleep(1);
  }
}

export interface Started {
  proc: ReturnType<typeof Bun.spawn>;
  exit?: number; // exit code once exited
  exitedAt?: number;
  stdout: string;
  stderr: string;
}

/** Starts a command (recorded), collecting its output, and exit time. */
export function start(argv: string[], env: Record<string, string | undefined> = process.env, cwd?: string): Started {
  const proc = Bun.spawn(argv, { cwd, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  recorded.add(proc.pid);
  const started: Started = { proc, stdout: "", stderr: "" };
  void new Response(proc.stdout as ReadableStream).text().then((t) => started.stdout = t);
  void new Response(proc.stderr as ReadableStream).text().then((t) => started.stderr = t);
  void proc.exited.then((code) => {
    started.exit = code;
    started.exitedAt = performance.now();
    recorded.delete(proc.pid);
  });
  return started;
}

export function runSync(argv: string[], cwd?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(argv[0], argv.slice(1), { cwd, encoding: "utf8", timeout: 120_000 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const lastInt = (text: string) => Number(/(\d+)\s*$/.exec(text.trim())?.[1] ?? NaN);
export const tail = (text: string) => text.trim().split("\n").slice(-3).join(" | ");

export async function readPid(path: string, timeoutMs = 3000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      const pid = Number(readFileSync(path, "utf8").trim());
      if (pid > 0) return pid;
    } catch {
      // Not yet written.
    }
    if (performance.now() > deadline) throw new Error(`no pid in ${path}`);
    await sleep(1);
  }
}
