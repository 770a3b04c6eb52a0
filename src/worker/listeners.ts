/**
 * Listener sharing in a worker: every server the entry opens shares its port with the other workers
 * (SO_REUSEPORT), whatever API it uses — node:net and node:http `listen`, `Bun.serve`, `Deno.serve` — and a
 * retiring worker drains them (see drain.ts): stops accepting, answers what was received with
 * `Connection: close`, and closes connections once idle.
 *
 * @module
 */
import { RUNTIME } from "../_runtime.ts";
import { Drain } from "./drain.ts";
import type { Entry } from "../run_entry.ts";
import { mayUseNode } from "./node_use.ts";
import { claimPort } from "./port_owner.ts";

/** Servers the entry opened, so a worker can stop accepting and let in-flight requests finish. */
export interface Listeners {
  /** Stops every server from accepting; resolves once their open connections have ended. */
  closeGracefully(): Promise<void>;
  /** Whether node:net and node:http were patched (the entry may use them). */
  node: boolean;
}

type AnyFn = (...args: unknown[]) => unknown;
type NetServer = import("node:net").Server;

/** node:net's `listen(port, host, backlog, cb)` and `listen(options, cb)` as options; `undefined` for a path. */
function listenOptions(args: unknown[]): Record<string, unknown> | undefined {
  if (typeof args[0] === "object" && args[0] !== null) return { ...args[0] as object };
  if (!(typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0])))) return undefined;
  const options: Record<string, unknown> = { port: Number(args[0]) };
  if (typeof args[1] === "string") options.host = args[1];
  const backlog = typeof args[1] === "number" ? args[1] : args[2];
  if (typeof backlog === "number") options.backlog = backlog;
  return options;
}

/**
 * Patches node:net/node:http `listen` and the runtime's serve() in this worker. Bun's node:http takes
 * reusePort only in a cluster worker, which the worker's environment makes it (see `Runtime.workerEnv`). A
 * port another daemon (any process outside the family of `masterPid`) listens on is refused with EADDRINUSE,
 * as without SO_REUSEPORT (see port_owner.ts).
 */
export async function shareListeners(masterPid: number, entry: Entry): Promise<Listeners> {
  const drain = new Drain();
  const check = (port: number, host: string | undefined) => claimPort(port, host, masterPid);
  RUNTIME.wrapServe(check, drain);
  // node:http alone takes a Bun worker 8 ms to load, Deno's Node layer tens: only for an entry that may use them
  const node = entry.usesNode ?? (entry.path === undefined || mayUseNode(entry.path));
  if (node) await shareNodeListeners(check, drain);
  // Stop accepting (the queue moves to a sibling), answer what came, close connections once idle.
  return { closeGracefully: () => drain.run(), node };
}

/** Patches node:net's and node:http's `listen` to share the port and drain. */
async function shareNodeListeners(check: (port: number, host: string | undefined) => void, drain: Drain) {
  const net = await import("node:net");
  const http = await import("node:http");
  const patch = (proto: { listen: AnyFn }) => {
    const original = proto.listen;
    proto.listen = function (this: NetServer, ...args: unknown[]) {
      const callback = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
      const options = listenOptions(args);
      if (!options) return original.apply(this, callback ? [...args, callback] : args); // a Unix socket path
      try {
        check(Number(options.port ?? 0), options.host as string | undefined);
      } catch (err) {
        queueMicrotask(() => this.emit("error", err)); // after listen() returns, where node reports EADDRINUSE
        return this;
      }
      options.reusePort = true;
      options.exclusive = true; // listen here, not through a cluster primary
      if (this instanceof http.Server) drain.watchNodeServer(this);
      drain.onStop(async (idle) => {
        await idle(); // close() closes idle connections at once: the drain has stopped the listener
        if (!this.listening) return;
        const closed = new Promise((resolve) => this.close(resolve));
        (this as { closeIdleConnections?: () => void }).closeIdleConnections?.();
        await closed;
      });
      return original.apply(this, callback ? [options, callback] : [options]);
    };
  };
  patch(net.Server.prototype as unknown as { listen: AnyFn });
  if (http.Server.prototype.listen !== net.Server.prototype.listen) {
    patch(http.Server.prototype as unknown as { listen: AnyFn });
  }
}
