/**
 * An entry's start-up failure as the one line the launcher (or a foreground run) prints: the entry's own
 * message, then where it was thrown, with what a daemon's context adds (its working directory, who holds
 * its port). The whole stack goes to the log.
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { portTaken } from "./worker/port_owner.ts";

/** The first frame of `stack` in a file of the program (the entry's, through the embedded source maps), not the
 * runtime's. */
function locationOf(stack: string): string | undefined {
  for (const line of stack.split("\n")) {
    const frame = /^\s+at (?:.*\((.+)\)|(.+))$/.exec(line);
    const where = frame?.[1] ?? frame?.[2];
    if (where && /:\d+:\d+$/.test(where) && !/^(ext|node):/.test(where)) return where.replace(/^file:\/\//, "");
  }
  return undefined;
}

/** The path a failed file operation names: node:fs's `path`, or the quoted one in the message (Deno's own API). */
function pathOf(err: { path?: unknown; message?: unknown }): string | undefined {
  if (typeof err.path === "string") return err.path;
  return /'([^']+)'$/.exec(String(err.message))?.[1];
}

/**
 * `err`, thrown or rejected by the entry before it was ready, in one line: its message, then its location
 * (`server.ts:4:9`). A relative path not found or not permitted says the working directory (a daemon's is
 * `/`) and that `--chdir` changes it; a port in use says which process serves it, as `--workers` does.
 *
 * @example
 * ```ts
 * import { entryFailure } from "./startup_error.ts";
 * const err = new Error("boom");
 * err.stack = "Error: boom\n    at <anonymous> (server.ts:4:9)";
 * console.log(entryFailure(err)); // Error: boom at server.ts:4:9
 * ```
 */
export function entryFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err).split("\n")[0];
  const e = err as Error & { code?: unknown; port?: unknown; address?: unknown };
  const stack = e.stack ?? "";
  if (e.code === "EADDRINUSE" && !e.message.includes(" serves port ")) { // the runtime's own, not claimPort's
    const port = Number(e.port ?? /(?:port |:)(\d+)\D*$/.exec(e.message)?.[1]);
    if (port > 0) return String(portTaken(port, typeof e.address === "string" ? e.address : undefined).stack);
  }
  // An error that names no port: still the fix.
  const busy = e.code === "EADDRINUSE" && !e.message.includes(" serves port ")
    ? ": another process serves that port: stop it, or give this daemon another port"
    : "";
  const head = `${e.name}: ${e.message}`.split("\n")[0];
  const where = locationOf(stack);
  const relative = relativePath(e);
  return `${head}${where ? ` at ${where}` : ""}${relative ? `: ${relative}` : ""}${busy}`;
}

/** For a relative path not found or not permitted: where it was looked for, and how to change that. */
function relativePath(e: Error & { code?: unknown }): string | undefined {
  const path = pathOf(e);
  if (!(e.code === "ENOENT" || e.code === "EACCES") || !path || path.startsWith("/")) return undefined;
  return `${path} is relative to the working directory, ${host.cwd()}${
    host.cwd() === "/" ? " (a daemon's)" : ""
  }: --chdir DIR changes it`;
}

/** What the log keeps of the entry's error (at start-up, or one that ends it later): its stack, and where a
 * relative path was looked for; for a port in use, the line naming who serves it (the runtime's stack there
 * is the runtime's own). */
export function entryStack(err: unknown): string {
  if ((err as { code?: unknown } | null)?.code === "EADDRINUSE") return entryFailure(err);
  if (!(err instanceof Error)) return String(err);
  const relative = relativePath(err);
  return `${err.stack ?? String(err)}${relative ? `\n${relative}` : ""}`;
}
