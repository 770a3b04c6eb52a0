/**
 * The system calls of the runner's own code — files, the environment, signals, exit — on each runtime's own
 * API: on Deno a `node:` module loads its Node compatibility layer, 25–40 ms of CPU in every process (README,
 * Benchmarks), so nothing of ours imports one there; Bun's `node:fs` is its own native module, nothing extra.
 * Errors carry Node's `code` (`ENOENT`, `EEXIST`, `ESRCH`…) on both.
 *
 * @module
 */
import { denoSystem } from "./_host_deno.ts";
import type { FileInfo, System } from "./_system.ts";

export type { FileInfo, SignalName, System, Timer } from "./_system.ts";

/** `path` made absolute against the directory `base`, normalised, as POSIX `path.resolve(base, path)` does. */
export function resolvePath(base: string, path: string): string {
  const parts: string[] = [];
  for (const part of `${path.startsWith("/") ? "" : base}/${path}`.split("/")) {
    if (part === "..") parts.pop();
    else if (part && part !== ".") parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/** The directory part of `path`, as POSIX `path.dirname` gives it. */
export function parentDir(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const at = trimmed.lastIndexOf("/");
  if (at < 0) return path.startsWith("/") ? "/" : ".";
  return at === 0 ? "/" : trimmed.slice(0, at).replace(/\/+$/, "") || "/";
}

/** The last part of `path` less `suffix`, as POSIX `path.basename` gives it. */
export function baseName(path: string, suffix = ""): string {
  const last = path.replace(/\/+$/, "").split("/").pop() || path.slice(0, 1);
  return suffix && last !== suffix && last.endsWith(suffix) ? last.slice(0, -suffix.length) : last;
}

/** Whether Bun runs this process (else Deno). */
export const IS_BUN = "Bun" in globalThis;

const bunInfo = (s: import("node:fs").Stats): FileInfo => ({
  isFile: s.isFile(),
  isDirectory: s.isDirectory(),
  isSymlink: s.isSymbolicLink(),
  isFifo: s.isFIFO(),
  isSocket: s.isSocket(),
  isCharDevice: s.isCharacterDevice(),
  isBlockDevice: s.isBlockDevice(),
  size: s.size,
  mode: s.mode,
  uid: s.uid,
  gid: s.gid,
  ino: s.ino,
  dev: s.dev,
  nlink: s.nlink,
  mtimeMs: s.mtimeMs,
});

function bunSystem(): System {
  // Required on first use, synchronously and only under Bun: a `--version` loads none of node:fs.
  let loaded: typeof import("node:fs") | undefined;
  const fs = () =>
    loaded ??= (import.meta as unknown as { require(id: string): typeof import("node:fs") }).require("node:fs");
  return {
    args: () => process.argv.slice(2),
    execPath: () => process.execPath,
    scriptPath: () => process.argv[1],
    env: (name) => process.env[name],
    deleteEnv: (name) => void delete process.env[name],
    environ: process.env,
    cwd: () => process.cwd(),
    chdir: (dir) => process.chdir(dir),
    pid: () => process.pid,
    ppid: () => process.ppid,
    uid: () => process.getuid!(),
    euid: () => process.geteuid!(),
    exists: (path) => fs().existsSync(path),
    stat: (path) => bunInfo(fs().statSync(path)),
    lstat: (path) => bunInfo(fs().lstatSync(path)),
    readText: (path) => fs().readFileSync(path, "utf8"),
    readBytes: (path) => fs().readFileSync(path),
    readLink: (path) => fs().readlinkSync(path),
    readDir: (path) => fs().readdirSync(path),
    appendText: (path, text) => fs().appendFileSync(path, text),
    rename: (from, to) => fs().renameSync(from, to),
    link: (existing, path) => fs().linkSync(existing, path),
    unlink: (path) => fs().unlinkSync(path),
    remove: (path) => fs().rmSync(path, { force: true }),
    makeDir: (path, options) => void fs().mkdirSync(path, options),
    writeStdout: (text) => void fs().writeSync(1, text),
    writeStderr: (text) => void fs().writeSync(2, text),
    columns: () => process.stdout.isTTY ? process.stdout.columns : undefined,
    kill: (pid, signal) => void process.kill(pid, signal),
    onSignal: (signal, listener) => void process.on(signal, listener),
    offSignal: (signal, listener) => void process.off(signal, listener),
    signalListeners: (signal) => process.listenerCount(signal),
    onceIdle: (listener) => void process.once("beforeExit", () => listener()),
    onExit: (listener) => void process.on("exit", listener),
    onFatal: (listener) => void process.on("uncaughtException", listener).on("unhandledRejection", listener),
    offFatal: (listener) => void process.off("uncaughtException", listener).off("unhandledRejection", listener),
    timer(ms, fn, options = {}) {
      const timer = options.repeat ? setInterval(fn, ms) : setTimeout(fn, ms);
      if (options.unref) timer.unref();
      return { cancel: () => clearTimeout(timer) };
    },
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    exit: (code) => process.exit(code),
    nodeLayerLoaded: () => false,
    arm64: process.arch === "arm64",
  };
}

/**
 * The running runtime's system calls.
 *
 * @example
 * ```ts
 * import { host } from "./_host.ts";
 * console.log(host.exists("/proc/self/fd"), host.readDir("/proc/self/fd").length > 2);
 * ```
 */
export const host: System = IS_BUN ? bunSystem() : denoSystem();
