#!/usr/bin/env bun
/**
 * The `daemonic` command: `daemonic build ENTRY -o OUT` and `daemonic run ENTRY [runner options]`.
 *
 * @module
 */
// No node: module here (nor in what is loaded before the runner): on Deno it costs 25–40 ms of CPU.
import { resolvePath } from "../ffi/_host.ts";
import { RUNTIME } from "./_runtime.ts";
import { DaemonError, ExitCode, userPathError } from "./errors.ts";
import { VERSION } from "./version.ts";

const { sys } = RUNTIME;

const USAGE = "Usage: daemonic build|run|ls … (see daemonic --help)";

/** `daemonic --help`, `daemonic build --help`: as wide as the terminal. */
async function help(command?: "build"): Promise<void> {
  const width = RUNTIME.sys.columns();
  console.log((await import("./cli/usage.ts")).toolUsage(command, width));
}

function usageError(message: string): never {
  throw new DaemonError("USAGE", `${message}\n${USAGE}`);
}

function entryPath(arg: string | undefined, baseDir: string): string {
  if (!arg || arg.startsWith("-")) usageError("Missing ENTRY: name the script to run, e.g. daemonic run server.ts");
  const path = resolvePath(baseDir, arg);
  if (!sys.exists(path)) throw new DaemonError("NO_INPUT", `Cannot find entry ${path}: check the path`);
  return path;
}

async function cli(argv: string[]): Promise<void> {
  const missing = RUNTIME.missingPermissions();
  if (missing) throw new DaemonError("NO_PERMISSION", missing);
  // `deno task` and `npm run` start us in the project's directory; INIT_CWD is where the user was.
  const baseDir = sys.env("INIT_CWD") ?? sys.cwd();
  const [command, ...rest] = argv;
  switch (command) {
    case "run": {
      const path = entryPath(rest[0], baseDir);
      const { main, nameOf } = await import("./runner.ts");
      const url = `file://${path.split("/").map(encodeURIComponent).join("/")}`;
      return main({
        name: nameOf(path),
        version: VERSION,
        entryPath: path,
        load: () => import(url),
        argv: rest.slice(1),
        baseDir,
      });
    }
    case "build": {
      if (rest.includes("--help") || rest.includes("-h")) return help("build");
      // Not a literal: the npm package's bundled cli.js (scripts/build-npm.sh) loads the build from the files
      // tsc wrote, which find daemonic's own sources relative to themselves.
      const buildModule = "./build/build.ts";
      const { build, parseBuildArgs } = await import(buildModule) as typeof import("./build/build.ts");
      const options = parseBuildArgs(rest, baseDir);
      const out = build(options);
      console.log(out);
      return;
    }
    case "ls": // pm2 ls: every daemon of this user, from any daemonic binary
      if (rest.some((a) => a !== "--json")) {
        usageError(`Unknown argument '${rest.find((a) => a !== "--json")}' for ls: only --json`);
      }
      sys.exit((await import("./roles/list.ts")).list(rest.includes("--json")));
      break;
    case "--version":
    case "-V":
      console.log(`daemonic ${VERSION}`);
      return;
    case "--help":
    case "-h":
    case "help":
      return help();
    default:
      usageError(
        command ? `Unknown command '${command}': use build, run or ls` : "Missing command: use build, run or ls",
      );
  }
}

try {
  await cli(sys.args());
} catch (err) {
  const userError = userPathError(err);
  if (userError) {
    sys.writeStderr(`${userError.message}\n`); // synchronous: a pipe write must not be lost to the exit that follows
    sys.exit(userError.exitCode);
  }
  sys.writeStderr(`daemonic: internal error: ${(err as Error)?.stack ?? err}\n`);
  sys.exit(ExitCode.SOFTWARE);
}
