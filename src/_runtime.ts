/**
 * The one file in `src/` that knows which runtime runs it: a table with one row per runtime, as Hono's
 * adapters do. Everything else asks {@linkcode RUNTIME} and stays runtime-neutral.
 *
 * @module
 */
import { host, IS_BUN, type System } from "../ffi/_host.ts";

export type { System } from "../ffi/_host.ts";

type AnyFn = (...args: unknown[]) => unknown;
type Served = Record<string, unknown> & { fetch: AnyFn };
/** How a worker's servers are drained (see drain.ts): handlers wrapped, one stop registered per server
 * (called with `idle`, which resolves when idle connections may be closed). */
export interface Drainer {
  wrapHandler<H extends (request: Request, ...rest: unknown[]) => Response | Promise<Response>>(
    handler: H,
    connectionOf?: (request: Request, ...rest: unknown[]) => string | undefined,
  ): H;
  onStop(stop: (idle: () => Promise<void>) => Promise<void>): void;
}
/** Called before a server binds `port` on `host` with SO_REUSEPORT; throws to refuse it (EADDRINUSE). */
export type PortCheck = (port: number, host: string | undefined) => void;

/** What differs between the runtimes. */
export interface Runtime {
  key: "bun" | "deno";
  /** The signals that reopen (or hold) the logs (see the rows). */
  reopenSignals: readonly ("SIGURG" | "SIGUSR1")[];
  /** Whether a JS listener may take SIGUSR1 without side effects. */
  usr1IsSafe: boolean;
  /** What a worker's environment needs so that node:http shares its port. */
  workerEnv(id: number): Record<string, string>;
  /** Takes what `workerEnv` set out of the environment the entry's own children inherit, once node:http
   * has read it (`node`: the entry may use node:http). */
  dropWorkerEnv(node: boolean): Promise<void>;
  /** The arguments of this process's command with what a worker needs to share its port (SO_REUSEPORT). */
  sharingArgs(args: readonly string[]): string[];
  /** Makes `process.argv` (and `Deno.args`) look as if `entryPath` ran alone with `args`. */
  setEntryArgv(entryPath: string, args: readonly string[]): void;
  /** Wraps the runtime's serve() so every server shares its port, passing each through `check`, and drains
   * through `drain` when the worker retires. */
  wrapServe(check: PortCheck, drain: Drainer): void;
  /** Serves a default export with `fetch` as the runtime itself does (`bun run`, `deno serve`). */
  serveExport(app: Served): void;
  /** The command line `args` (after the executable) with the runtime flags every re-executed process of
   * ours needs, whatever the user typed. */
  relaunchArgs(args: readonly string[]): string[];
  /** What stops the runner from working with the permissions this process was given, in a line. */
  missingPermissions(): string | undefined;
  /** The system calls of a process that has not loaded its role yet. */
  sys: System;
  /** Makes the runtime's serve() name the port it found in use on its EADDRINUSE error, as node:net's does
   * (for startup_error.ts); where wrapServe runs, its check has named it already. */
  labelPortInUse(): void;
}

const g = globalThis as unknown as Record<string, Record<string, AnyFn>>;

// Bun.serve options an export may carry; read one by one, so an app object's getters and prototype count.
const BUN_OPTIONS = [
  "port",
  "hostname",
  "unix",
  "development",
  "websocket",
  "tls",
  "static",
  "maxRequestBodySize",
  "idleTimeout",
  "ipv6Only",
  "reusePort",
  "id",
] as const;

const bun: Runtime = {
  key: "bun",
  // SIGURG, whose default action is to ignore it, so a stray one never kills; SIGUSR1 too, as Unicorn users
  // send it (and a listener keeps Bun's own inspector off).
  reopenSignals: ["SIGURG", "SIGUSR1"],
  usr1IsSafe: true,
  // Bun's node:http shares a port (reusePort) only in a cluster worker; this marks ours as one.
  workerEnv: (id) => ({ NODE_UNIQUE_ID: String(id) }),
  // node:cluster reads NODE_UNIQUE_ID when first imported and keeps what it read.
  async dropWorkerEnv(node) {
    if (node) await import("node:cluster");
    delete process.env.NODE_UNIQUE_ID;
  },
  sharingArgs: (args) => [...args],
  setEntryArgv: (entryPath, args) => void (process.argv = [process.execPath, entryPath, ...args]),
  labelPortInUse: () => {}, // "Failed to start server. Is port 3000 in use?"
  wrapServe(check, drain) {
    const serve = g.Bun.serve;
    g.Bun.serve = (options: unknown, ...rest: unknown[]) => {
      const o = options as { port?: number | string; hostname?: string; unix?: string; fetch?: AnyFn };
      const env = host.environ;
      if (!o.unix) check(Number(o.port ?? env.BUN_PORT ?? env.PORT ?? env.NODE_PORT ?? 3000), o.hostname);
      const shared = {
        ...options as object,
        reusePort: true,
        ...(o.fetch ? { fetch: drain.wrapHandler(o.fetch as never) } : {}),
      };
      const server = serve.call(g.Bun, shared, ...rest) as { stop(force?: boolean): Promise<void> };
      drain.onStop(async (idle) => {
        await idle(); // stop() closes idle connections at once: the drain has stopped the listener
        await server.stop(false);
      });
      return server;
    };
  },
  serveExport(app) {
    const options: Record<string, unknown> = { fetch: app.fetch.bind(app) };
    for (const key of BUN_OPTIONS) if (app[key] !== undefined) options[key] = app[key];
    // An app's own `routes` (Hono's, Elysia's) is a list of its routes, not Bun's routes table.
    if (app.routes && typeof app.routes === "object" && !Array.isArray(app.routes)) options.routes = app.routes;
    if (typeof app.error === "function") options.error = (app.error as AnyFn).bind(app);
    g.Bun.serve(options);
  },
  relaunchArgs: (args) => [...args],
  missingPermissions: () => undefined, // Bun has no permission system
  sys: host,
};

/** The TCP connection of a Deno.serve request: Deno (2.9's own HTTP/1 server) answers requests pipelined
 * behind a response marked `Connection: close` instead of closing, so the drain holds those back itself. */
function denoConnection(_request: Request, info: unknown): string | undefined {
  const address = (info as { remoteAddr?: { transport: string; hostname: string; port: number } } | undefined)
    ?.remoteAddr;
  return address?.transport === "tcp" ? `${address.hostname}:${address.port}` : undefined;
}

// What the runner itself uses: files, the environment, libc (FFI), the system's ids, programs (systemctl, tail).
const DENO_PERMISSIONS = ["read", "write", "env", "ffi", "sys", "run"];

// Read before an entry's argv replaces it (RUNTIME.setEntryArgv).
const DENO_MAIN = IS_BUN ? undefined : Deno.mainModule;

/** Puts `wrap(serve)` in Deno.serve's place without reading it now: Deno loads its HTTP server's code on the
 * first read (12 ms), which an entry that never serves with it must not pay. */
function replaceDenoServe(wrap: (serve: AnyFn) => AnyFn): void {
  const current = Object.getOwnPropertyDescriptor(g.Deno, "serve");
  let wrapped: AnyFn | undefined;
  Object.defineProperty(g.Deno, "serve", {
    configurable: true,
    get: () => wrapped ??= wrap((current?.get ? current.get.call(g.Deno) : current?.value) as AnyFn),
  });
}

/** `deno run [flags] SCRIPT …` (or `deno [flags] SCRIPT …`) with `--unstable-net`, which Deno.serve and
 * Deno.listen need for reusePort (workers share a port), unless the flags have it; and `npm:daemonic` as the
 * file it resolved to in the project's node_modules (the same on every run), whose resolution costs each
 * process 10 ms. A `deno compile`d binary has it compiled in and takes only its own arguments. */
function denoRelaunchArgs(args: readonly string[]): string[] {
  if ((g.Deno as unknown as { build: { standalone?: boolean } }).build.standalone) return [...args];
  const at = args[0] === "run" ? 1 : 0;
  const resolved = DENO_MAIN?.startsWith("file://") && DENO_MAIN.includes("/node_modules/")
    ? decodeURIComponent(new URL(DENO_MAIN).pathname)
    : undefined;
  const script = args.findIndex((a, i) => i >= at && a.startsWith("npm:"));
  const out = resolved && script >= 0 ? args.with(script, resolved) : [...args];
  let end = at;
  while (end < out.length && out[end].startsWith("-")) end++;
  if (out.slice(at, end).includes("--unstable-net")) return out;
  return [...out.slice(0, at), "--unstable-net", ...out.slice(at)];
}

const deno: Runtime = {
  key: "deno",
  // Never SIGUSR1: it starts the V8 inspector there (see ignoreInspectorSignal).
  reopenSignals: ["SIGURG"],
  usr1IsSafe: false,
  workerEnv: () => ({}),
  dropWorkerEnv: async () => {},
  // `deno run` refuses reusePort without --unstable-net (`deno compile` builds it in): add it after `run`.
  sharingArgs: (args) =>
    (g.Deno.build as unknown as { standalone?: boolean }).standalone || args[0] !== "run" ||
      args.some((a) => /^--unstable(-net)?$/.test(a))
      ? [...args]
      : ["run", "--unstable-net", ...args.slice(1)],
  setEntryArgv(entryPath, args) {
    Object.defineProperty(g.Deno, "args", { value: Object.freeze([...args]), configurable: true });
    // Node's process.argv is made from these when the entry's first `node:` import loads the Node layer (Deno
    // 2.x): set them rather than load it now for every entry; once loaded, set process.argv itself.
    const internal = (g.Deno as unknown as Record<symbol, Record<string, { denoArgs?: string[] }>>)[
      (g.Deno as unknown as { internal: symbol }).internal
    ];
    const bootstrap = internal?.__nodeBootstrapArgs;
    if (bootstrap?.denoArgs && !internal.__nodeProcessBootstrapped) {
      bootstrap.denoArgs = [...args];
      Object.defineProperty(g.Deno, "mainModule", { value: `file://${encodeURI(entryPath)}`, configurable: true });
    } else {
      const { process } = globalThis as unknown as { process: { argv: string[]; execPath: string } };
      process.argv = [process.execPath, entryPath, ...args];
    }
  },
  labelPortInUse: () =>
    replaceDenoServe((serve) => (...args: unknown[]) => {
      try {
        return serve.apply(g.Deno, args);
      } catch (err) {
        // AddrInUse: "Address already in use (os error 98)", no port.
        const o = (typeof args[0] === "object" && args[0] !== null ? args[0] : {}) as {
          port?: number;
          hostname?: string;
          path?: string;
        };
        if ((err as { code?: string } | null)?.code === "EADDRINUSE" && !o.path) {
          Object.assign(err as object, { port: o.port ?? 8000, address: o.hostname });
        }
        throw err;
      }
    }),
  wrapServe(check, drain) {
    replaceDenoServe((serve) => (...args: unknown[]) => {
      if (typeof args[0] === "object" && args[0] !== null && typeof args[0] !== "function") {
        args[0] = { ...args[0] as object, reusePort: true };
      } else args.unshift({ reusePort: true });
      const o = args[0] as { port?: number; hostname?: string; path?: string; handler?: AnyFn; cert?: unknown };
      if (!o.path) check(o.port ?? 8000, o.hostname ?? "0.0.0.0");
      // Over TLS clients speak HTTP/2 (no pipelining, many requests at once on a connection): nothing to hold.
      const connectionOf = o.cert ? undefined : denoConnection;
      const handlerAt = args.findIndex((a) => typeof a === "function");
      if (handlerAt >= 0) args[handlerAt] = drain.wrapHandler(args[handlerAt] as never, connectionOf);
      else if (typeof o.handler === "function") {
        args[0] = { ...o, handler: drain.wrapHandler(o.handler as never, connectionOf) };
      }
      const server = serve.apply(g.Deno, args) as { shutdown(): Promise<void> };
      drain.onStop(async (idle) => {
        await idle(); // shutdown() closes idle connections at once: the drain has stopped the listener
        await server.shutdown();
      });
      return server;
    });
  },
  serveExport(app) {
    const port = Deno.env.get("PORT");
    const options: Record<string, unknown> = { port: port ? Number(port) : 8000 };
    if (typeof app.onListen === "function") options.onListen = (app.onListen as AnyFn).bind(app);
    g.Deno.serve(options, app.fetch.bind(app));
  },
  relaunchArgs: denoRelaunchArgs,
  missingPermissions() {
    const { permissions } = g.Deno as unknown as { permissions: { querySync(p: { name: string }): { state: string } } };
    const missing = DENO_PERMISSIONS.filter((name) => permissions.querySync({ name }).state !== "granted");
    if (missing.length === 0) return undefined;
    const flags = missing.map((m) => `--allow-${m}`).join(", ");
    return "daemonic needs all permissions on Deno (it calls libc through FFI, which no permission flag confines), " +
      `and lacks ${flags}: run it with -A, e.g. deno run -A npm:daemonic run server.ts`;
  },
  sys: host,
};

/** The runtime running this process. */
export const RUNTIME: Runtime = IS_BUN ? bun : deno;

/**
 * The command that started this process, to start it again: the real executable and the original argv
 * (runtime flags included), read from /proc so it is exact on both runtimes, compiled or not, with the
 * runtime flags our processes need added (see `Runtime.relaunchArgs`), and the directory its relative paths
 * resolve against.
 */
export function selfCommand(): { path: string; args: string[]; cwd: string } {
  const { sys } = RUNTIME;
  const argv = sys.readText("/proc/self/cmdline").split("\0");
  argv.pop(); // cmdline ends with a NUL
  return { path: sys.readLink("/proc/self/exe"), args: RUNTIME.relaunchArgs(argv.slice(1)), cwd: sys.cwd() };
}

/** Sets the title `ps` shows where the runtime supports one. */
export function setTitle(title: string): void {
  if (IS_BUN) process.title = title; // Deno has no settable title; prctl(PR_SET_NAME) still names the process
}

const SIGUSR1 = 10;

/**
 * On Deno (2.9.2 and later) a SIGUSR1 starts the V8 inspector on 127.0.0.1:9229, an unauthenticated debugger
 * any local user could attach to, and no JS listener prevents it. Deno installs that handler about 500 ms
 * after start, on its event loop, so the disposition is set to SIG_IGN now and again once Deno has
 * installed its handler. Does nothing on Bun (a SIGUSR1 listener there keeps Bun's inspector off). With
 * `afterMs`, all of it starts that much later (well before Deno's handler), off a start-up that binds no libc.
 */
export function ignoreInspectorSignal(libc: { ignoreSignal(signal: number): void }, afterMs?: number): void {
  if (RUNTIME.usr1IsSafe) return;
  if (afterMs !== undefined) return void RUNTIME.sys.timer(afterMs, () => ignoreInspectorSignal(libc), { unref: true });
  libc.ignoreSignal(SIGUSR1);
  const caught = () =>
    (BigInt(`0x${/SigCgt:\s*(\w+)/.exec(RUNTIME.sys.readText("/proc/self/status"))![1]}`) >> BigInt(SIGUSR1 - 1)) & 1n;
  const deadline = Date.now() + 60_000; // bounded: a Deno without the handler never installs it
  const watch = RUNTIME.sys.timer(1, () => {
    if (caught()) libc.ignoreSignal(SIGUSR1);
    else if (Date.now() < deadline) return;
    watch.cancel();
  }, { repeat: true, unref: true });
}
