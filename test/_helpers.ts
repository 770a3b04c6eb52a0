/**
 * Test helpers: the daemon under test on the runtime running the suite, /proc readers, and cleanup that
 * kills exactly the pids a test recorded.
 */
import assert from "node:assert/strict";
import { after } from "node:test";
import { spawn, spawnSync, type SpawnSyncOptions } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { userProject } from "./_project.ts";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const FIXTURES = join(ROOT, "test", "fixtures");
export const CLI = join(ROOT, "src", "cli.ts");
export const RUNTIME: "bun" | "deno" = "Bun" in globalThis ? "bun" : "deno";
export const BUN = join(ROOT, "node_modules", ".bin", "bun");
export const DENO = join(ROOT, "node_modules", ".bin", "deno");

/** The result of a finished command. */
export interface Ran {
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (bounded by `timeout`, default 30 s). */
export function run(argv: string[], options: SpawnSyncOptions = {}): Ran {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", timeout: 30_000, ...options });
  return { status: r.status, signal: r.signal, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? "") };
}

/** How a test starts the runner for an entry: `daemonic run` on the suite's runtime, or a built binary. */
export interface Target {
  name: string;
  /** The command line of the runner for `entry` with runner `args`. */
  argv(entry: string, args: string[]): string[];
}

/** `daemonic run ENTRY …` on the runtime running this suite: `bun src/cli.ts run`; on Deno the user's own
 * command, `deno run -A npm:daemonic run`, of the packed package installed in a project (see _project.ts). */
export const runTarget: Target = {
  name: `${RUNTIME} daemonic run`,
  argv: (entry, args) =>
    RUNTIME === "bun" ? [BUN, CLI, "run", entry, ...args] : [...denoUserCommand(), "run", entry, ...args],
};

/** `deno run -A npm:daemonic`, as a Deno user types it in their project, runnable from any directory. */
export function denoUserCommand(): string[] {
  return [DENO, "run", "-A", "--config", userProject().config, "npm:daemonic"];
}

/** Builds each entry (a fixture name, or a path) into `dir` with `daemonic build` (Bun); returns a target
 * running those binaries. */
export async function compiledTarget(entries: string[], dir: string): Promise<Target> {
  const binaries = new Map<string, string>();
  await Promise.all(entries.map(async (entry) => {
    const name = entry.slice(entry.lastIndexOf("/") + 1);
    const out = join(dir, name.replace(/\W/g, "_"));
    const child = spawn(BUN, [CLI, "build", resolve(FIXTURES, entry), "-o", out], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d) => stderr += d);
    const code = await new Promise((r) => child.on("close", r));
    if (code !== 0) throw new Error(`build of ${entry} failed: ${stderr}`);
    binaries.set(name, out);
  }));
  return {
    name: "compiled bun binary",
    argv: (entry, args) => {
      const binary = binaries.get(entry.slice(entry.lastIndexOf("/") + 1));
      if (!binary) throw new Error(`not built: ${entry}`);
      return [binary, ...args];
    },
  };
}

/** The environment variable every process a test starts carries: the directory of the sandbox that was
 * newest when it started (inherited through every re-execution, whatever title the process gives itself). */
export const SANDBOX_ENV = "DAEMONIC_TEST_SANDBOX";
const openSandboxes: Sandbox[] = [];

/** A temp directory, removed by {@linkcode Sandbox.cleanup}, which also kills every pid recorded and every
 * process that carries its tag ({@linkcode SANDBOX_ENV}). */
export class Sandbox {
  readonly dir = mkdtempSync(join(tmpdir(), "daemonic-test-"));
  private readonly pids = new Set<number>();
  constructor() {
    openSandboxes.push(this);
    process.env[SANDBOX_ENV] = this.dir; // children inherit process.env
  }
  path(name: string): string {
    return join(this.dir, name);
  }
  /** Records a pid this test started, so cleanup kills it even when the test fails. */
  track(pid: number | undefined | null): number {
    if (pid && pid > 1) this.pids.add(pid);
    return pid ?? 0;
  }
  /** Live processes started while this sandbox was the newest, from their environment (not their title). */
  tagged(): number[] {
    const tag = `${SANDBOX_ENV}=${this.dir}`;
    const found: number[] = [];
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
      try {
        if (readFileSync(`/proc/${name}/environ`, "latin1").split("\0").includes(tag) && alive(Number(name))) {
          found.push(Number(name));
        }
      } catch {
        // gone, or a kernel thread
      }
    }
    return found;
  }
  cleanup(): void {
    openSandboxes.splice(openSandboxes.indexOf(this), 1);
    if (openSandboxes.length) process.env[SANDBOX_ENV] = openSandboxes.at(-1)!.dir;
    else delete process.env[SANDBOX_ENV];
    // Again while any is left: a launcher killed mid-start may have spawned its daemon a moment before.
    for (let round = 0; round < 5; round++) {
      const pids = new Set([...this.pids, ...this.tagged()].filter(alive));
      if (pids.size === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      for (const pid of pids) waitGone(pid, 3000);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Whether `pid` exists (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
    return state !== undefined && state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Blocks until `pid` is gone or `ms` passed; returns whether it is gone. */
export function waitGone(pid: number, ms: number): boolean {
  const end = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > end) return false;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  return true;
}

/** Polls `predicate` until true or `ms` passed. */
export async function eventually(predicate: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

/** When `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat); 0 once it is gone. */
export function startTime(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[19]);
  } catch {
    return 0;
  }
}

/** Fields of /proc/PID/stat. */
export function procStat(pid: number): { ppid: number; pgrp: number; session: number; ttyNr: number } {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { ppid: +f[1], pgrp: +f[2], session: +f[3], ttyNr: +f[4] };
}

/** A field of /proc/PID/status, e.g. "SigIgn", "Umask". */
export function procStatus(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith(`${field}:`));
  return line?.split(":")[1].trim() ?? "";
}

/** fd number → link target of /proc/PID/fd. */
export function procFds(pid: number): Map<number, string> {
  const fds = new Map<number, string>();
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    try {
      fds.set(Number(name), readlinkSync(`/proc/${pid}/fd/${name}`));
    } catch {
      // closed meanwhile
    }
  }
  return fds;
}

/** The open flags (octal) of fd in PID, from /proc/PID/fdinfo. */
export function fdFlags(pid: number, fd: number): number {
  const line = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8").split("\n").find((l) => l.startsWith("flags:"));
  return parseInt(line!.split(":")[1].trim(), 8);
}

/** Whether a signal number is set in a /proc status mask like SigIgn. */
export function inMask(mask: string, signal: number): boolean {
  return ((BigInt(`0x${mask}`) >> BigInt(signal - 1)) & 1n) === 1n;
}

/** Pids of processes whose command line mentions `marker` (assertions only; cleanup kills recorded pids). */
export function pidsMentioning(marker: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(marker) && alive(Number(name))) {
        found.push(Number(name));
      }
    } catch {
      // gone
    }
  }
  return found;
}

/** A listening TCP server on an OS-chosen loopback port (to make a port busy). */
export async function busyPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { port: (server.address() as { port: number }).port, server };
}

/** Reads a file, or "" when it does not exist. */
export function readOr(path: string): string {
  return existsSync(path) ? readFileSync(path, "utf8") : "";
}

/** The port the fixture server printed ("listening on N") into `log`. The line may come a moment after
 * readiness: the kernel accepts connections before the runtime runs the listen callback. */
export async function portFromLog(log: string, ms = 5000): Promise<number> {
  await eventually(() => /listening on (\d+)/.test(readOr(log)), ms);
  const m = /listening on (\d+)/.exec(readOr(log));
  if (!m) throw new Error(`no port in ${log}: ${readOr(log)}`);
  return Number(m[1]);
}

/** One HTTP GET over a fresh connection; rejects when the connection is refused. */
export async function get(port: number, path = "/"): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return await res.text();
}

/** A port the OS says is free right now (for servers that several workers must share). */
export async function freePort(): Promise<number> {
  const { port, server } = await busyPort();
  await new Promise((r) => server.close(r));
  return port;
}

/** Child pids of `pid`. */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** /proc/PID/comm: the name `ps` and `top` show. */
export function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** One TCP exchange: connect, read until the server closes. Rejects on a refused or reset connection. */
export function exchange(port: number, request = "GET / HTTP/1.0\r\n\r\n", timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error("timeout")));
    socket.on("connect", () => socket.write(request));
    socket.on("data", (d) => data += d);
    socket.on("error", reject);
    socket.on("close", () => data ? resolve(data) : reject(new Error("closed without an answer")));
  });
}

/** Connects sequentially until `stop()` is called; counts answers and failures, collects answering pids. */
export function hammer(
  port: number,
): {
  stop(): Promise<{ ok: number; failed: string[]; pids: Set<number> }>;
  pidsSince(mark: number): Set<number>;
  mark(): number;
} {
  const answers: number[] = [];
  const failed: string[] = [];
  let running = true;
  const done = (async () => {
    const end = Date.now() + 60_000; // bounded even if stop() is never called
    while (running && Date.now() < end) {
      try {
        const text = await exchange(port);
        const m = /Hello from PID (\d+)/.exec(text);
        if (m) answers.push(Number(m[1]));
        else failed.push(`unexpected answer: ${text.slice(0, 80)}`);
      } catch (err) {
        failed.push((err as Error).message);
      }
    }
  })();
  return {
    mark: () => answers.length,
    pidsSince: (mark) => new Set(answers.slice(mark)),
    async stop() {
      running = false;
      await done;
      return { ok: answers.length, failed, pids: new Set(answers) };
    },
  };
}

/** A test body run with a fresh {@linkcode Sandbox}, cleaned up (recorded pids killed) however it ends. */
export function sandboxed(body: (sb: Sandbox) => unknown): () => Promise<void> {
  return async () => {
    const sb = new Sandbox();
    try {
      await body(sb);
    } finally {
      sb.cleanup();
    }
  };
}

/** Like {@linkcode sandboxed}, with `net.ipv4.tcp_migrate_req` at 1 for the test's duration and restored
 * after: lossless rolling restarts without the reuseport program need the kernel to hand a closing
 * listener's queue to its SO_REUSEPORT siblings. */
export function migrating(body: (sb: Sandbox) => unknown): () => Promise<void> {
  const knob = "/proc/sys/net/ipv4/tcp_migrate_req";
  return sandboxed(async (sb) => {
    const saved = readFileSync(knob, "utf8").trim();
    writeFileSync(knob, "1");
    try {
      await body(sb);
    } finally {
      writeFileSync(knob, saved);
    }
  });
}

/** Asserts a daemon's stdio as daemon(7) wants it: stdin /dev/null, stdout and stderr the log in O_APPEND,
 * no fd of the caller's (`leak`) inherited, no pipe left open. */
export function assertDaemonStdio(pid: number, logFile: string, leak: string): void {
  const fds = procFds(pid);
  assert.equal(fds.get(0), "/dev/null");
  assert.equal(fds.get(1), logFile);
  assert.equal(fds.get(2), logFile);
  assert.ok(fdFlags(pid, 1) & 0o2000, "stdout is O_APPEND");
  assert.ok(![...fds.values()].includes(leak), `inherited fd leaked: ${[...fds.entries()].join(" ")}`);
  assert.ok(
    ![...fds.values()].some((t) => t.startsWith("pipe:")),
    `the channel or a launcher pipe left open: ${[...fds.values()]}`,
  );
}

/** A sandbox for the whole test file (its binaries, shared fixtures), removed once the file's tests are done;
 * `shared`: readable by the second user, who runs the binaries built in it. */
export function fileSandbox(options: { shared?: boolean } = {}): Sandbox {
  const sb = new Sandbox();
  if (options.shared) chmodSync(sb.dir, 0o755);
  after(() => sb.cleanup());
  return sb;
}

/** The target a test file runs `entries` (fixture names or paths) with: on Bun, binaries built into `dir` by
 * `daemonic build`; on Deno, the user's own command ({@linkcode runTarget}). */
export function targetFor(entries: string[], dir: string): Promise<Target> {
  return RUNTIME === "bun" ? compiledTarget(entries, dir) : Promise.resolve(runTarget);
}

/** A daemon a test started with {@linkcode startDaemon}. */
export interface Started {
  /** The launcher's result. */
  r: Ran;
  /** The daemon's pid (0 when none started), recorded in the sandbox. */
  pid: number;
  pidFile: string;
  logFile: string;
  /** The daemon's children now (its workers, or keep-alive's entry process), each recorded in the sandbox. */
  children(): number[];
}

/** Where {@linkcode startDaemon} puts a daemon's files and how it runs the launcher. */
export interface StartOptions {
  /** The pid file and log are NAME.pid and NAME.log in the sandbox (default "d"). */
  files?: string;
  /** The log, when it is not NAME.log in the sandbox. */
  logFile?: string;
  /** The command the launcher runs under: `runuser -u USER --`, `ip netns exec NS`, a shell holding fds… */
  prefix?: string[];
  /** For the launcher's run: env, cwd, timeout. */
  spawn?: SpawnSyncOptions;
  /** Leaves the launcher's exit status to the caller (by default a start that fails fails the test). */
  mayFail?: boolean;
}

/** Runs `entry` (a fixture name, or a path) of `target` as `--daemon --pid-file P --log-file L FLAGS --
 * ENTRYARGS`; records in `sb` the daemon (the pid the launcher printed, else, after exit 0, its pid file's)
 * and its children at once, so cleanup stops them whatever the test does next. */
export function startDaemon(
  sb: Sandbox,
  target: Target,
  entry: string,
  flags: string[],
  entryArgs: string[],
  options: StartOptions = {},
): Started {
  const files = options.files ?? "d";
  const pidFile = sb.path(`${files}.pid`), logFile = options.logFile ?? sb.path(`${files}.log`);
  const args = ["--daemon", "--pid-file", pidFile, "--log-file", logFile, ...flags, "--", ...entryArgs];
  const r = run([...options.prefix ?? [], ...target.argv(resolve(FIXTURES, entry), args)], options.spawn);
  const printed = /^\d+$/.test(r.stdout.trim()) ? Number(r.stdout.trim()) : 0;
  const pid = sb.track(printed || (r.status === 0 ? parseInt(readOr(pidFile), 10) || 0 : 0));
  const children = () => pid ? childrenOf(pid).map((child) => sb.track(child)) : [];
  children();
  if (!options.mayFail) assert.equal(r.status, 0, `${r.stderr}\n${readOr(logFile)}`);
  return { r, pid, pidFile, logFile, children };
}

/** The second user the tests run daemons as, made once (as root): its name, uid and gid. */
export const TEST_USER = "daemonic-test";
export function testUser(): { name: string; uid: number; gid: number } {
  if (run(["id", TEST_USER]).status !== 0) {
    const r = run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER]);
    assert.ok(r.status === 0 || run(["id", TEST_USER]).status === 0, r.stderr); // another suite made it meanwhile
  }
  return {
    name: TEST_USER,
    uid: Number(run(["id", "-u", TEST_USER]).stdout),
    gid: Number(run(["id", "-g", TEST_USER]).stdout),
  };
}
