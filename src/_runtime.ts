/**
 * The one file in `src/` that knows which runtime runs it.
 *
 * @module
 */
import { readFileSync, readlinkSync } from "node:fs";
import process from "node:process";
import { claimPort } from "./port_owner.ts";

/** `"bun"` or `"deno"`. */
export const runtime: "bun" | "deno" = "Bun" in globalThis ? "bun" : "deno";

/**
 * The command that started this process, to start it again: the real executable and the original argv
 * (runtime flags included), read from /proc so it is exact on both runtimes, compiled or not, and the
 * directory its relative paths resolve against.
 */
export function selfCommand(): { path: string; args: string[]; cwd: string } {
  const argv = readFileSync("/proc/self/cmdline", "utf8").split("\0");
  argv.pop(); // cmdline ends with a NUL
  return { path: readlinkSync("/proc/self/exe"), args: argv.slice(1), cwd: process.cwd() };
}

/** Makes `process.argv` (and `Deno.args` / `Bun.argv`) look as if `entryPath` ran alone with `args`. */
export function setEntryArgv(entryPath: string, args: readonly string[]): void {
  process.argv = [process.execPath, entryPath, ...args];
  if (runtime === "deno") {
    const deno = (globalThis as unknown as { Deno: object }).Deno;
    Object.defineProperty(deno, "args", { value: Object.freeze([...args]), configurable: true });
  }
}

/** Sets the title `ps` shows where the runtime supports one. */
export function setTitle(title: string): void {
  try {
    process.title = title;
  } catch {
    // Deno has no settable title; prctl(PR_SET_NAME) still names the process.
  }
}

/** Servers the entry opened, so a worker can stop accepting and let in-flight requests finish. */
export interface Listeners {
  /** Stops every server from accepting; resolves once their open connections have ended. */
  closeGracefully(): Promise<void>;
}

type AnyFn = (...args: unknown[]) => unknown;

/**
 * Makes every server the entry opens share its port with the other workers (SO_REUSEPORT), whatever API
 * it uses: node:net and node:http `listen`, `Bun.serve`, `Deno.serve`. Bun's node:http takes reusePort only
 * in a cluster worker, which `NODE_UNIQUE_ID` in the worker's environment makes it (see supervisor.ts).
 * A port another daemon (or any process outside the family of `masterPid`) listens on is refused with
 * EADDRINUSE, as without SO_REUSEPORT (see port_owner.ts).
 */
export async function shareListeners(masterPid: number): Promise<Listeners> {
  const closers: (() => Promise<void>)[] = [];
  const net = await import("node:net");
  const http = await import("node:http");
  const patch = (proto: { listen: AnyFn }) => {
    const original = proto.listen;
    proto.listen = function (this: import("node:net").Server, ...args: unknown[]) {
      const callback = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
      let options: Record<string, unknown>;
      if (typeof args[0] === "object" && args[0] !== null) options = { ...args[0] as object };
      else if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
        options = { port: Number(args[0]) };
        if (typeof args[1] === "string") options.host = args[1];
        const backlog = typeof args[1] === "number" ? args[1] : args[2];
        if (typeof backlog === "number") options.backlog = backlog;
      } else return original.apply(this, callback ? [...args, callback] : args); // a Unix socket path
      try {
        claimPort(Number(options.port ?? 0), options.host as string | undefined, masterPid);
      } catch (err) {
        process.nextTick(() => this.emit("error", err)); // where node reports its own EADDRINUSE
        return this;
      }
      options.reusePort = true;
      options.exclusive = true; // listen here, not through a cluster primary
      closers.push(() =>
        new Promise<void>((resolve) => {
          if (!this.listening) return resolve();
          this.close(() => resolve());
          (this as { closeIdleConnections?: () => void }).closeIdleConnections?.();
        })
      );
      return original.apply(this, callback ? [options, callback] : [options]);
    };
  };
  patch(net.Server.prototype as unknown as { listen: AnyFn });
  if (http.Server.prototype.listen !== net.Server.prototype.listen) patch(http.Server.prototype as unknown as { listen: AnyFn });

  const g = globalThis as unknown as Record<string, Record<string, AnyFn>>;
  if (runtime === "bun") {
    const serve = g.Bun.serve;
    g.Bun.serve = (options: unknown, ...rest: unknown[]) => {
      const o = options as { port?: number | string; hostname?: string; unix?: string };
      const env = process.env;
      if (!o.unix) claimPort(Number(o.port ?? env.BUN_PORT ?? env.PORT ?? env.NODE_PORT ?? 3000), o.hostname, masterPid);
      const server = serve.call(g.Bun, { ...options as object, reusePort: true }, ...rest) as { stop(force?: boolean): Promise<void> };
      closers.push(async () => await server.stop(false));
      return server;
    };
  } else {
    const serve = g.Deno.serve;
    Object.defineProperty(g.Deno, "serve", {
      configurable: true,
      value: (...args: unknown[]) => {
        if (typeof args[0] === "object" && args[0] !== null && typeof args[0] !== "function") {
          args[0] = { ...args[0] as object, reusePort: true };
        } else args.unshift({ reusePort: true });
        const o = args[0] as { port?: number; hostname?: string; path?: string };
        if (!o.path) claimPort(o.port ?? 8000, o.hostname ?? "0.0.0.0", masterPid);
        const server = serve.apply(g.Deno, args) as { shutdown(): Promise<void> };
        closers.push(() => server.shutdown());
        return server;
      },
    });
  }
  return { closeGracefully: async () => void await Promise.all(closers.map((close) => close())) };
}

/** The signals that reopen (or hold) the logs. SIGURG, whose default action is to ignore it, so a stray one
 * never kills; on Bun also SIGUSR1, which Unicorn users send. Never SIGUSR1 on Deno: it starts the V8
 * inspector there (see {@linkcode ignoreInspectorSignal}). */
export const REOPEN_SIGNALS: readonly ("SIGURG" | "SIGUSR1")[] = runtime === "bun" ? ["SIGURG", "SIGUSR1"] : ["SIGURG"];

const SIGUSR1 = 10;

/**
 * On Deno (2.9.2 and later) a SIGUSR1 starts the V8 inspector on 127.0.0.1:9229, an unauthenticated debugger
 * any local user could attach to, and no JS listener prevents it. Deno installs that handler about 500 ms
 * after start, on its event loop, so the disposition is set to SIG_IGN now and again once Deno has
 * installed its handler. Does nothing on Bun (a SIGUSR1 listener there keeps Bun's inspector off).
 */
export function ignoreInspectorSignal(libc: { ignoreSignal(signal: number): void }): void {
  if (runtime !== "deno") return;
  libc.ignoreSignal(SIGUSR1);
  const caught = () => (BigInt(`0x${/SigCgt:\s*(\w+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]}`) >> BigInt(SIGUSR1 - 1)) & 1n;
  const deadline = Date.now() + 60_000; // bounded: a Deno without the handler never installs it
  const watch = setInterval(() => {
    if (caught()) libc.ignoreSignal(SIGUSR1);
    else if (Date.now() < deadline) return;
    clearInterval(watch);
  }, 1);
  (watch as { unref?: () => void }).unref?.();
}
