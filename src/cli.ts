#!/usr/bin/env bun
/**
 * The `daemonic` command: `daemonic build ENTRY -o OUT` and `daemonic run ENTRY [runner options]`.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { writeSync } from "node:fs";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { DaemonError, ExitCode, userPathError } from "./errors.ts";
import { main, nameOf } from "./runner.ts";
import { VERSION } from "./version.ts";

const USAGE = "Usage: daemonic build|run|ls … (see daemonic --help)";

/** `daemonic --help`, `daemonic build --help`: as wide as the terminal. */
async function help(command?: "build"): Promise<void> {
  const width = process.stdout.isTTY ? process.stdout.columns : undefined;
  console.log((await import("./usage.ts")).toolUsage(command, width));
}

function usageError(message: string): never {
  throw new DaemonError("USAGE", `${message}\n${USAGE}`);
}

function entryPath(arg: string | undefined, baseDir: string): string {
  if (!arg || arg.startsWith("-")) usageError("Missing ENTRY: name the script to run, e.g. daemonic run server.ts");
  const path = resolve(baseDir, arg);
  if (!existsSync(path)) throw new DaemonError("NO_INPUT", `Cannot find entry ${path}: check the path`);
  return path;
}

async function cli(argv: string[]): Promise<void> {
  // `deno task` and `npm run` start us in the project's directory; INIT_CWD is where the user was.
  const baseDir = process.env.INIT_CWD ?? process.cwd();
  const [command, ...rest] = argv;
  switch (command) {
    case "run": {
      const path = entryPath(rest[0], baseDir);
      return main({ name: nameOf(path), version: VERSION, entryPath: path, load: () => import(pathToFileURL(path).href), argv: rest.slice(1), baseDir });
    }
    case "build": {
      if (rest.includes("--help") || rest.includes("-h")) return help("build");
      const { build, parseBuildArgs } = await import("./build.ts");
      const options = parseBuildArgs(rest, baseDir);
      const out = build(options);
      console.log(out);
      return;
    }
    case "ls": // pm2 ls: every daemon of this user, from any daemonic binary
      if (rest.some((a) => a !== "--json")) usageError(`Unknown argument '${rest.find((a) => a !== "--json")}' for ls: only --json`);
      process.exit((await import("./roles/list.ts")).list(rest.includes("--json")));
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
      usageError(command ? `Unknown command '${command}': use build, run or ls` : "Missing command: use build, run or ls");
  }
}

try {
  await cli(process.argv.slice(2));
} catch (err) {
  const userError = userPathError(err);
  if (userError) {
    writeSync(2, `${userError.message}\n`); // synchronous: a pipe write must not be lost to the exit that follows
    process.exit(userError.exitCode);
  }
  writeSync(2, `daemonic: internal error: ${(err as Error)?.stack ?? err}\n`);
  process.exit(ExitCode.SOFTWARE);
}
