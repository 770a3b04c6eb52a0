/**
 * The system calls every process makes before it knows its role (and ffi/'s fallbacks make), on each
 * runtime's own API: on Deno a `node:` module loads its Node compatibility layer, 25–40 ms of CPU in every
 * process (README, Benchmarks). Bun's `node:fs` is its own native module, with nothing extra to load.
 *
 * @module
 */

/** What {@linkcode host} offers. */
export interface System {
  /** The command line's arguments after the script (or, compiled, after the executable). */
  args(): string[];
  env(name: string): string | undefined;
  deleteEnv(name: string): void;
  cwd(): string;
  pid(): number;
  /** Whether `path` exists (following symlinks). */
  exists(path: string): boolean;
  readText(path: string): string;
  readLink(path: string): string;
  /** The names in directory `path`. */
  readDir(path: string): string[];
  /** Appends `text` to the file at `path`, creating it (0666 less the umask). */
  appendText(path: string, text: string): void;
  /** Writes `text` to stdout before returning, so an exit right after cannot lose it. */
  writeStdout(text: string): void;
  /** Writes `text` to stderr before returning, so an exit right after cannot lose it. */
  writeStderr(text: string): void;
  exit(code: number): never;
  /** Whether this is an AArch64 machine (some flag values differ there). */
  arm64: boolean;
}

/** `path` made absolute against the directory `base`, normalised, as POSIX `path.resolve(base, path)` does. */
export function resolvePath(base: string, path: string): string {
  const parts: string[] = [];
  for (const part of `${path.startsWith("/") ? "" : base}/${path}`.split("/")) {
    if (part === "..") parts.pop();
    else if (part && part !== ".") parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/** Whether Bun runs this process (else Deno). */
export const IS_BUN = "Bun" in globalThis;
const nodeFs: typeof import("node:fs") | undefined = IS_BUN ? await import("node:fs") : undefined;
const fs = () => nodeFs!;

const bun = (): System => ({
  args: () => process.argv.slice(2),
  env: (name) => process.env[name],
  deleteEnv: (name) => void delete process.env[name],
  cwd: () => process.cwd(),
  pid: () => process.pid,
  exists: (path) => fs().existsSync(path),
  readText: (path) => fs().readFileSync(path, "utf8"),
  readLink: (path) => fs().readlinkSync(path),
  readDir: (path) => fs().readdirSync(path),
  appendText: (path, text) => fs().appendFileSync(path, text),
  writeStdout: (text) => void fs().writeSync(1, text),
  writeStderr: (text) => void fs().writeSync(2, text),
  exit: (code) => process.exit(code),
  arm64: process.arch === "arm64",
});

const encoder = new TextEncoder();
function writeAll(to: { writeSync(bytes: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  for (let done = 0; done < bytes.length;) done += to.writeSync(bytes.subarray(done));
}
const deno = (): System => ({
  args: () => [...Deno.args],
  env: (name) => Deno.env.get(name),
  deleteEnv: (name) => Deno.env.delete(name),
  cwd: () => Deno.cwd(),
  pid: () => Deno.pid,
  exists(path) {
    try {
      Deno.statSync(path);
      return true;
    } catch {
      return false;
    }
  },
  readText: (path) => Deno.readTextFileSync(path),
  readLink: (path) => Deno.readLinkSync(path),
  readDir: (path) => [...Deno.readDirSync(path)].map((entry) => entry.name),
  appendText: (path, text) => Deno.writeTextFileSync(path, text, { append: true }),
  writeStdout: (text) => writeAll(Deno.stdout, text),
  writeStderr: (text) => writeAll(Deno.stderr, text),
  exit: (code) => Deno.exit(code),
  arm64: Deno.build.arch === "aarch64",
});

/**
 * The running runtime's system calls.
 *
 * @example
 * ```ts
 * import { host } from "./_host.ts";
 * console.log(host.exists("/proc/self/fd"), host.readDir("/proc/self/fd").length > 2);
 * ```
 */
export const host: System = IS_BUN ? bun() : deno();
