/**
 * `daemonic build --target`: the Bun runtime of another platform, fetched once from npm (`@oven/bun-*` of
 * the building Bun's version) into a cache, then passed to `bun build --compile-executable-path`.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { DaemonError } from "../errors.ts";

/** Each `--target`: Bun's `--target` name and the npm package holding that runtime. */
export const TARGETS = {
  "linux-x64": { bun: "bun-linux-x64", pkg: "@oven/bun-linux-x64" },
  "linux-x64-baseline": { bun: "bun-linux-x64-baseline", pkg: "@oven/bun-linux-x64-baseline" },
  "linux-arm64": { bun: "bun-linux-arm64", pkg: "@oven/bun-linux-aarch64" },
  "linux-x64-musl": { bun: "bun-linux-x64-musl", pkg: "@oven/bun-linux-x64-musl" },
  "linux-arm64-musl": { bun: "bun-linux-arm64-musl", pkg: "@oven/bun-linux-aarch64-musl" },
} as const;

/** A `--target` value. */
export type Target = keyof typeof TARGETS;

/** Checks a `--target` value; a bad one is a usage error naming the choices. */
export function parseTarget(value: string): Target {
  if (value in TARGETS) return value as Target;
  throw new DaemonError("USAGE", `Invalid --target '${value}': use one of ${Object.keys(TARGETS).join(", ")}`);
}

/** Where fetched runtimes are kept: `$DAEMONIC_CACHE`, else `$XDG_CACHE_HOME/daemonic`, else `~/.cache/daemonic`. */
export function cacheDir(): string {
  return process.env.DAEMONIC_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "daemonic");
}

/** The version of the Bun at `bun`. */
function bunVersion(bun: string): string {
  const r = spawnSync(bun, ["--version"], { encoding: "utf8" });
  const version = r.stdout?.trim();
  if (r.status !== 0 || !/^\d+\.\d+\.\d+/.test(version ?? "")) {
    throw new DaemonError("BUILD_FAILED", `Cannot build: ${bun} --version failed: install Bun (npm i bun)`);
  }
  return version;
}

const fail = (spec: string, detail: string) => {
  const lines = detail.split("\n").map((l) => l.replace(/^npm error /, "").trim()).filter(Boolean);
  const line = lines.find((l) => /reason:|404|no matching/i.test(l)) ?? lines[0];
  return new DaemonError(
    "BUILD_FAILED",
    `Cannot fetch ${spec} from npm (${line ?? "npm pack failed"}): check the network and npm's registry setting`,
  );
};

/**
 * The path of the Bun runtime for `target` matching the Bun at `bun`, fetched with `npm pack` on first use
 * (one line on stderr says so) and cached. Throws `BUILD_FAILED` when npm cannot fetch it.
 */
export function runtimeFor(target: Target, bun: string): string {
  const version = bunVersion(bun);
  const { pkg } = TARGETS[target];
  const dir = join(cacheDir(), `${pkg.slice("@oven/".length)}-${version}`);
  const exe = join(dir, "bin", "bun");
  if (existsSync(exe)) return exe;
  const spec = `${pkg}@${version}`;
  process.stderr.write(`daemonic: fetching ${spec} (the Bun runtime for ${target}) into ${dir}, once\n`);
  mkdirSync(cacheDir(), { recursive: true });
  const tmp = mkdtempSync(join(cacheDir(), ".fetch-"));
  try {
    const pack = spawnSync("npm", ["pack", "--loglevel=error", spec, "--pack-destination", tmp], {
      encoding: "utf8",
      cwd: tmp,
    });
    if (pack.error || pack.status !== 0) throw fail(spec, pack.error?.message ?? pack.stderr ?? "");
    const tarball = join(tmp, pack.stdout.trim().split("\n").pop()!);
    const untar = spawnSync("tar", ["-xzf", tarball, "-C", tmp], { encoding: "utf8" });
    if (untar.status !== 0 || !existsSync(join(tmp, "package", "bin", "bun"))) {
      throw fail(spec, untar.stderr || "no bin/bun in the package");
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(tmp, "package"), dir); // whole or not at all: a build killed meanwhile leaves no half runtime
    return exe;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
