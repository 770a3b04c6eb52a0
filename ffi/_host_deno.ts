/**
 * {@linkcode System} on Deno's own API, so no process of ours loads Deno's Node compatibility layer unless the
 * entry does (see _host.ts).
 *
 * @module
 */
import type { FileInfo, SignalName, System } from "./_system.ts";

type FileCall =
  | "exists"
  | "stat"
  | "lstat"
  | "readText"
  | "readBytes"
  | "readLink"
  | "readDir"
  | "appendText"
  | "rename"
  | "link"
  | "unlink"
  | "remove"
  | "makeDir";

const info = (s: Deno.FileInfo): FileInfo => ({
  isFile: s.isFile,
  isDirectory: s.isDirectory,
  isSymlink: s.isSymlink,
  isFifo: s.isFifo ?? false,
  isSocket: s.isSocket ?? false,
  isCharDevice: s.isCharDevice ?? false,
  isBlockDevice: s.isBlockDevice ?? false,
  size: s.size,
  mode: s.mode ?? 0,
  uid: s.uid ?? 0,
  gid: s.gid ?? 0,
  ino: s.ino ?? 0,
  dev: s.dev ?? 0,
  nlink: s.nlink ?? 0,
  mtimeMs: s.mtime?.getTime() ?? 0,
});

const encoder = new TextEncoder();
function writeAll(to: { writeSync(bytes: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  for (let done = 0; done < bytes.length;) done += to.writeSync(bytes.subarray(done));
}

// Linux's numbers (the same on x86-64 and AArch64) of the signals sent by number.
const SIGNAL_NAMES: Record<number, Deno.Signal> = Object.fromEntries(
  Object.entries({ HUP: 1, INT: 2, QUIT: 3, ABRT: 6, KILL: 9, USR1: 10, USR2: 12, ALRM: 14, TERM: 15, CHLD: 17 })
    .concat(Object.entries({ CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23, WINCH: 28 }))
    .map(([name, number]) => [number, `SIG${name}` as Deno.Signal]),
);

/** Deno.kill's errors name no `code`; ours do, as node's process.kill's. */
function kill(pid: number, signal: SignalName | number): void {
  const name = typeof signal === "number" && signal !== 0 ? SIGNAL_NAMES[signal] : signal;
  if (name === undefined) throw new TypeError(`signal ${signal} has no name here: send it by name`);
  try {
    Deno.kill(pid, name as Deno.Signal);
  } catch (err) {
    const code = err instanceof Deno.errors.NotFound
      ? "ESRCH"
      : err instanceof Deno.errors.PermissionDenied
      ? "EPERM"
      : undefined;
    throw Object.assign(err as Error, code ? { code } : {});
  }
}

/** Counts signal listeners, the entry's own (Deno.addSignalListener, or node's process.on through it)
 * included, as node's process.listenerCount does: wrapped before any entry code runs. */
function countSignalListeners(): (signal: SignalName) => number {
  const counts = new Map<string, Set<() => void>>();
  const add = Deno.addSignalListener, remove = Deno.removeSignalListener;
  const define = (name: string, value: unknown) => Object.defineProperty(Deno, name, { configurable: true, value });
  define("addSignalListener", (signal: Deno.Signal, listener: () => void) => {
    add(signal, listener);
    counts.set(signal, (counts.get(signal) ?? new Set()).add(listener));
  });
  define("removeSignalListener", (signal: Deno.Signal, listener: () => void) => {
    remove(signal, listener);
    counts.get(signal)?.delete(listener);
  });
  return (signal) => counts.get(signal)?.size ?? 0;
}

/** Deno.env as a record, as node's `process.env` is. */
function liveEnv(): Record<string, string | undefined> {
  return new Proxy({}, {
    get: (_, name) => typeof name === "string" ? Deno.env.get(name) : undefined,
    set: (_, name, value) => (Deno.env.set(String(name), String(value)), true),
    deleteProperty: (_, name) => (Deno.env.delete(String(name)), true),
    has: (_, name) => typeof name === "string" && Deno.env.has(name),
    ownKeys: () => Object.keys(Deno.env.toObject()),
    getOwnPropertyDescriptor(_, name) {
      const value = typeof name === "string" ? Deno.env.get(name) : undefined;
      return value === undefined ? undefined : { value, writable: true, enumerable: true, configurable: true };
    },
  });
}

/** `call`, its errors carrying the `path` and `syscall` node:fs's carry (errors.ts names the path from them). */
function onPath<A extends unknown[], R>(syscall: string, call: (path: string, ...rest: A) => R) {
  return (path: string, ...rest: A): R => {
    try {
      return call(path, ...rest);
    } catch (err) {
      throw err instanceof Error ? Object.assign(err, { path, syscall }) : err;
    }
  };
}

/** The files part of {@linkcode System}. */
function denoFiles(): Pick<System, FileCall> {
  return {
    exists(path) {
      try {
        Deno.statSync(path);
        return true;
      } catch {
        return false;
      }
    },
    stat: onPath("stat", (path) => info(Deno.statSync(path))),
    lstat: onPath("lstat", (path) => info(Deno.lstatSync(path))),
    readText: onPath("open", (path) => Deno.readTextFileSync(path)),
    readBytes: onPath("open", (path) => Deno.readFileSync(path)),
    readLink: onPath("readlink", (path) => Deno.readLinkSync(path)),
    readDir: onPath("scandir", (path) => [...Deno.readDirSync(path)].map((entry) => entry.name)),
    appendText: onPath("open", (path, text: string) => Deno.writeTextFileSync(path, text, { append: true })),
    rename: onPath("rename", (from, to: string) => Deno.renameSync(from, to)),
    link: (existing, path) => onPath("link", (to: string) => Deno.linkSync(existing, to))(path),
    unlink: onPath("unlink", (path) => Deno.removeSync(path)),
    remove: onPath("unlink", (path) => {
      try {
        Deno.removeSync(path);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }),
    makeDir: onPath("mkdir", (path, options?: Deno.MkdirOptions) => Deno.mkdirSync(path, options)),
  };
}

type CoreTimers = {
  createTimer(fn: () => void, ms: number, args: undefined, repeat: boolean, refed: boolean): object;
  cancelTimer(timer: object): void;
  unrefTimer(timer: object): void;
};

/** Timers on Deno's core: the global setTimeout's first call loads node:timers and a part of the Node layer
 * (10–14 ms, Deno 2.9); core's own (internal) are used while they have this shape, the globals otherwise. */
function timers(): Pick<System, "timer" | "sleep"> {
  const core = (Deno as unknown as Record<symbol, { core?: Partial<CoreTimers> }>)[
    (Deno as unknown as { internal: symbol }).internal
  ]?.core;
  const timer: System["timer"] = typeof core?.createTimer === "function" && typeof core.cancelTimer === "function" &&
      typeof core.unrefTimer === "function"
    ? (ms, fn, options = {}) => {
      const { createTimer, cancelTimer, unrefTimer } = core as CoreTimers;
      const handle = createTimer(fn, ms, undefined, options.repeat ?? false, true);
      if (options.unref) unrefTimer(handle);
      return { cancel: () => cancelTimer(handle) };
    }
    : (ms, fn, options = {}) => {
      const id = options.repeat ? setInterval(fn, ms) : setTimeout(fn, ms);
      if (options.unref) Deno.unrefTimer(id);
      return { cancel: () => clearTimeout(id) };
    };
  return { timer, sleep: (ms) => new Promise((resolve) => timer(ms, () => resolve())) };
}

/** The running Deno's {@linkcode System}. */
export function denoSystem(): System {
  const signalListeners = countSignalListeners();
  const fatal = new Map<(err: unknown) => void, [(e: ErrorEvent) => void, (e: PromiseRejectionEvent) => void]>();
  return {
    args: () => [...Deno.args],
    execPath: () => Deno.execPath(),
    scriptPath: () => decodeURIComponent(new URL(Deno.mainModule).pathname),
    env: (name) => Deno.env.get(name),
    deleteEnv: (name) => Deno.env.delete(name),
    environ: liveEnv(),
    cwd: () => Deno.cwd(),
    chdir: (dir) => Deno.chdir(dir),
    pid: () => Deno.pid,
    ppid: () => Deno.ppid,
    uid: () => Deno.uid() ?? 0,
    euid: () => Number(/^Uid:\s+\d+\s+(\d+)/m.exec(Deno.readTextFileSync("/proc/self/status"))?.[1]),
    ...denoFiles(),
    writeStdout: (text) => writeAll(Deno.stdout, text),
    writeStderr: (text) => writeAll(Deno.stderr, text),
    columns: () => Deno.stdout.isTerminal() ? Deno.consoleSize().columns : undefined,
    kill,
    onSignal: (signal, listener) => Deno.addSignalListener(signal as Deno.Signal, listener),
    offSignal: (signal, listener) => Deno.removeSignalListener(signal as Deno.Signal, listener),
    signalListeners,
    onceIdle: (listener) => addEventListener("beforeunload", () => listener(), { once: true }),
    onExit: (listener) => addEventListener("unload", () => listener(Deno.exitCode)),
    onFatal(listener) {
      const handlers: [(e: ErrorEvent) => void, (e: PromiseRejectionEvent) => void] = [
        (e) => (e.preventDefault(), listener(e.error)),
        (e) => (e.preventDefault(), listener(e.reason)),
      ];
      fatal.set(listener, handlers);
      addEventListener("error", handlers[0]);
      addEventListener("unhandledrejection", handlers[1]);
    },
    offFatal(listener) {
      const handlers = fatal.get(listener);
      if (!handlers) return;
      fatal.delete(listener);
      removeEventListener("error", handlers[0]);
      removeEventListener("unhandledrejection", handlers[1]);
    },
    ...timers(),
    exit: (code) => Deno.exit(code),
    // Deno 2.x's flag, set when the first `node:` module (or the `process` global) loads the layer.
    nodeLayerLoaded: () =>
      (Deno as unknown as Record<symbol, Record<string, unknown>>)[
        (Deno as unknown as { internal: symbol }).internal
      ]?.__nodeProcessBootstrapped === true,
    arm64: Deno.build.arch === "aarch64",
  };
}
