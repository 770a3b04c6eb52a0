/**
 * The one file in `src/` that knows which runtime runs it.
 *
 * @module
 */
import { readFileSync, readlinkSync } from "node:fs";
import process from "node:process";

/** `"bun"` or `"deno"`. */
export const runtime: "bun" | "deno" = "Bun" in globalThis ? "bun" : "deno";

/**
 * The command that started this process, to start it again: the real executable and the original argv
 * (runtime flags included), read from /proc so it is exact on both runtimes, compiled or not.
 */
export function selfCommand(): { path: string; args: string[] } {
  const argv = readFileSync("/proc/self/cmdline", "utf8").split("\0");
  argv.pop(); // cmdline ends with a NUL
  return { path: readlinkSync("/proc/self/exe"), args: argv.slice(1) };
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

/**
 * Undoes what Deno (2.9.2 and later) does on SIGUSR1 besides calling our listener: it starts the V8
 * inspector on 127.0.0.1:9229, an unauthenticated debugger any local user could attach to, and no JS
 * listener can prevent it. daemonic uses SIGUSR1 to reopen logs, so the daemon closes an inspector it did
 * not start with, checking for a short while since Deno opens it on another thread. Does nothing on Bun
 * or when the process was started with --inspect.
 *
 * @example
 * ```ts ignore
 * const undo = inspectorUndoer();
 * process.on("SIGUSR1", () => { reopenLogs(path); undo(); });
 * ```
 */
export function inspectorUndoer(): () => void {
  if (runtime !== "deno") return () => {};
  const inspector = import("node:inspector");
  const startedWith = inspector.then((i) => i.url());
  return () => {
    for (const ms of [0, 10, 50, 200]) {
      const check = setTimeout(async () => {
        const i = await inspector;
        if (!(await startedWith) && i.url()) i.close();
      }, ms);
      (check as { unref?: () => void }).unref?.();
    }
  };
}
