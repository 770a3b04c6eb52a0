/**
 * The build step: the entry and the runner compiled into one executable, by `bun build --compile`
 * (default) or `deno compile` (`--runtime deno`; honours `DENORT_BIN`).
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { RUNTIME } from "../_runtime.ts";
import { checkDenoEntry, denoCompileFailure } from "./build_deno.ts";
import { parseTarget, runtimeFor, type Target, TARGETS } from "./build_target.ts";
import { DaemonError } from "../errors.ts";
import { closest } from "../cli/suggest.ts";
import { checkLibraries, IMAGE_USER, imagePlatform, imageReference, writeImage } from "./image.ts";
import { mayUseNode } from "../worker/node_use.ts";

/** Options of {@linkcode build}. */
export interface BuildOptions {
  /** Absolute path of the entry script. */
  entry: string;
  /** Absolute path of the executable to write. */
  output: string;
  /** Which runtime to embed (default `bun`). */
  runtime?: "bun" | "deno";
  /** The platform to build for (default: this machine's); Bun only. */
  target?: Target;
  /** `--image NAME:TAG`: write a container image archive to `output` instead (see image.ts). */
  image?: { reference: string; user: string };
}

const USAGE = "usage: daemonic build ENTRY -o OUTPUT [--runtime bun|deno] [--target " +
  "linux-x64|linux-x64-baseline|linux-arm64|linux-x64-musl|linux-arm64-musl] [--image NAME:TAG [--image-user " +
  "UID[:GID]]]";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** `.js` in the npm package (compiled into dist/), `.ts` in a checkout and on JSR. */
const EXT = import.meta.url.endsWith(".js") ? ".js" : ".ts";

const FLAGS = {
  output: { type: "string", short: "o" },
  runtime: { type: "string" },
  target: { type: "string" },
  image: { type: "string" },
  "image-user": { type: "string" },
} as const;

/** Refuses the first flag of `argv` that is not ours, naming the closest one (`--imgae`, `-image`), as the runner
 * does. */
function refuseUnknownFlag(argv: string[]): void {
  for (let i = 0; i < argv.length && argv[i] !== "--"; i++) {
    const arg = argv[i];
    if (!arg.startsWith("-") || arg === "-" || /^-o./.test(arg)) continue; // a positional, or -oOUTPUT
    const word = arg.replace(/^-+/, "").split("=")[0];
    if (arg === "-o" || (arg.startsWith("--") && word in FLAGS)) {
      if (!arg.includes("=")) i++; // its value
      continue;
    }
    const guess = closest(word, [...Object.keys(FLAGS), "help"]);
    const dashes = /^-[^-]/.test(arg) && word.length > 1 ? " (long options take two dashes)" : "";
    const hint = guess ? `did you mean --${guess}?${dashes}` : "see daemonic build --help";
    throw new DaemonError("USAGE", `Unknown option '${arg.split("=")[0]}' for daemonic build: ${hint}`);
  }
}

/** Parses `daemonic build` arguments; relative paths resolve against `baseDir`. */
export function parseBuildArgs(argv: string[], baseDir: string): BuildOptions {
  refuseUnknownFlag(argv);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: FLAGS, allowPositionals: true });
  } catch (cause) {
    throw new DaemonError("USAGE", `${(cause as Error).message.replace(/\.$/, "")}: ${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    throw new DaemonError("USAGE", `Missing ENTRY: ${USAGE}`);
  }
  if (!values.output) {
    throw new DaemonError("USAGE", "Missing -o OUTPUT: name the executable to write, e.g. -o mydaemon");
  }
  const rt = values.runtime ?? "bun";
  if (rt !== "bun" && rt !== "deno") throw new DaemonError("USAGE", `Invalid --runtime '${rt}': use bun or deno`);
  const target = values.target === undefined ? undefined : parseTarget(values.target);
  if (target && rt === "deno") throw new DaemonError("USAGE", "--target needs the Bun runtime: drop --runtime deno");
  const entry = resolve(baseDir, positionals[0]);
  if (!existsSync(entry)) throw new DaemonError("NO_INPUT", `Cannot find entry ${entry}: check the path`);
  const output = resolve(baseDir, values.output);
  if (!existsSync(dirname(output))) {
    throw new DaemonError(
      "CANNOT_CREATE",
      `Cannot write ${output}: directory ${dirname(output)} does not exist: create it or pick another -o`,
    );
  }
  return { entry, output, runtime: rt, target, image: imageFlags(values.image, values["image-user"], target) };
}

/** `--image NAME:TAG` and `--image-user UID[:GID]` (default 65532:65532, distroless's nonroot). */
function imageFlags(
  image: string | undefined,
  user: string | undefined,
  target: Target | undefined,
): BuildOptions["image"] {
  if (image === undefined) {
    if (user !== undefined) throw new DaemonError("USAGE", "Invalid --image-user: it goes with --image NAME:TAG");
    return undefined;
  }
  if (user !== undefined && !/^\d{1,10}(:\d{1,10})?$/.test(user)) {
    throw new DaemonError(
      "USAGE",
      `Invalid --image-user '${user}': give a numeric UID or UID:GID, e.g. --image-user 1000:1000 (0 for root)`,
    );
  }
  imagePlatform(target); // a musl target is refused here
  return { reference: imageReference(image), user: user ?? IMAGE_USER };
}

/** `--image`: compiles into a scratch directory, then writes the image archive to `output`. */
function buildImage(options: BuildOptions, image: NonNullable<BuildOptions["image"]>): string {
  const platform = imagePlatform(options.target);
  checkLibraries(platform); // before compiling: a missing libc6:arm64 fails at once
  const dir = mkdtempSync(join(tmpdir(), "daemonic-image-"));
  try {
    // Always the same name: bun embeds the output's name in the executable, and the image must not change with it.
    const binary = build({ ...options, image: undefined, output: join(dir, "app") });
    const id = writeImage({ binary, reference: image.reference, platform, user: image.user, output: options.output });
    if (process.stderr.isTTY) {
      process.stderr.write(
        `daemonic: image ${image.reference} (${id}) in ${options.output}: podman load -i ${options.output}\n`,
      );
    }
    return options.output;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The tool binary: the running one when it matches, else the one installed beside daemonic, else PATH's. */
function tool(name: "bun" | "deno"): string {
  if (RUNTIME.key === name) return process.execPath;
  const local = join(ROOT, "node_modules", ".bin", name);
  return existsSync(local) ? local : name;
}

/** The built executable's main module (the entry reaches it as `DAEMONIC_ENTRY`). */
const BUILD_MAIN = join(ROOT, "src", `build_main${EXT}`);

/**
 * The compiler's arguments, and where it writes the executable. Bun compiles BUILD_MAIN itself, the entry's
 * path given by `--define`, into `dir` under the entry's name (the executable's own module is
 * `/$bunfs/root/NAME`): no temporary path or output name gets into the bytes, so the same entry and version
 * build the same executable. Its source maps are embedded, so stack traces name the entry's own lines.
 */
function compileArgs(options: BuildOptions, dir: string): { args: string[]; compiled: string } {
  if (options.runtime === "deno") {
    // deno compile has no --define: a copy of BUILD_MAIN that declares the entry and imports the runner by path.
    const main = join(dir, "main.ts");
    const text = readFileSync(BUILD_MAIN, "utf8").replace(
      /(["'])(\.{1,2}\/[\w./]+)\1/g,
      (_, _q, file) => JSON.stringify(join(ROOT, "src", file)),
    );
    const defines = `const DAEMONIC_ENTRY = ${JSON.stringify(options.entry)};\n` +
      `const DAEMONIC_ENTRY_USES_NODE = ${mayUseNode(options.entry)};\n`;
    writeFileSync(main, defines + text);
    return {
      args: ["compile", "-A", "--unstable-net", "--no-check", "--quiet", "--output", options.output, main],
      compiled: options.output,
    };
  }
  const compiled = join(dir, basename(options.entry).replace(/\.[cm]?[jt]sx?$/, "") || "daemon");
  // --splitting puts the entry in its own chunk, loaded only when the runner runs it: bundled, the entry's
  // static imports (node:http, …) were hoisted into the runner's module and slowed every launcher,
  // --stop and --status down (bench: --daemon ready 120 → 105 ms, --stop 58 → 42 ms).
  // --bytecode: the executable carries JavaScriptCore bytecode, so neither process parses the code at
  // start-up (bench: foreground 59 → 47 ms, --daemon 105 → 88 ms; the binary grows 2.4 MB). ESM, because
  // the runner and entries use top-level await (bytecode defaults to CommonJS). --sourcemap: embedded with
  // --compile (its .map files stay in `dir`); paths relative to the entry's directory. Identifiers are not
  // minified: their short names follow the characters of the whole chunk, the entry's path included, so two
  // copies of one entry in two directories got different bytes (bytecode makes their length cost nothing).
  const args = [
    "build",
    "--compile",
    "--minify-syntax",
    "--minify-whitespace",
    "--splitting",
    "--bytecode",
    "--sourcemap=linked",
    "--format",
    "esm",
    "--define",
    `DAEMONIC_ENTRY=${JSON.stringify(options.entry)}`,
    "--define",
    `DAEMONIC_ENTRY_USES_NODE=${mayUseNode(options.entry)}`, // read here: the built executable has no sources
    BUILD_MAIN,
    "--outfile",
    compiled,
  ];
  return { args, compiled };
}

/** Moves the built executable into place (copies it across file systems). */
function moveFile(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as { code?: string }).code !== "EXDEV") throw err;
    copyFileSync(from, to);
  }
}

/**
 * Compiles `entry` with the runner into `output`. Returns the output path.
 *
 * @example
 * ```ts ignore
 * // ignore: it compiles a binary (test/build.test.ts does)
 * import { build } from "./build.ts";
 * build({ entry: "/srv/server.ts", output: "/srv/mydaemon" });
 * ```
 */
export function build(options: BuildOptions): string {
  if (options.image) return buildImage(options, options.image);
  const dir = mkdtempSync(join(tmpdir(), "daemonic-build-"));
  try {
    const { args, compiled } = compileArgs(options, dir);
    const exe = tool(options.runtime ?? "bun");
    if (options.runtime === "deno") checkDenoEntry(exe, options.entry, options.output, process.env.DENORT_BIN);
    if (options.target) {
      args.push("--target", TARGETS[options.target].bun, "--compile-executable-path", runtimeFor(options.target, exe));
    }
    // Said on a terminal only: a script reading stderr gets just the one line of an error.
    if (process.stderr.isTTY) {
      process.stderr.write(
        `daemonic: compiling ${options.entry} into ${options.output}${
          options.target ? ` for ${options.target}` : ""
        }\n`,
      );
    }
    const result = spawnSync(exe, args, {
      encoding: "utf8",
      cwd: dirname(options.entry),
      env: { ...process.env, NO_COLOR: "1" },
    });
    if ((result.error || result.status !== 0) && options.runtime === "deno") {
      throw denoCompileFailure(result, exe, options.entry, options.output, process.env.DENORT_BIN);
    }
    if (result.error || result.status !== 0) {
      const lines = (result.error?.message ?? `${result.stderr}\n${result.stdout}`).split("\n").map((l) => l.trim());
      const detail = lines.filter((l) => /error/i.test(l)).pop() ?? lines.filter(Boolean).pop() ??
        `exit ${result.status}`;
      throw new DaemonError(
        "BUILD_FAILED",
        `Cannot build ${options.output}: ${exe} failed: ${detail}: check the entry compiles with: bun build ` +
          `${options.entry}`,
      );
    }
    if (compiled !== options.output) moveFile(compiled, options.output);
    return options.output;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
