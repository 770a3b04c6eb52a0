/**
 * A user's project with daemonic installed the way a user installs it: `npm pack` of this checkout (which
 * runs scripts/build-npm.sh), then `npm install` of the tarball in a project of its own. Packing and
 * installing take seconds, so one project is made per source state of this checkout and shared by every
 * test file (and both runtimes' suites) until the sources change.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Where it is kept between runs: root's cache of what the test set-up builds (beside the test roots), so a
 * run leaves nothing in /tmp; another user's, their temp directory. */
const CACHE = process.getuid?.() === 0 ? "/var/cache/daemonic-test" : tmpdir();
const SOURCES = [
  "mod.ts",
  "src",
  "ffi",
  "package.json",
  "tsconfig.json",
  "scripts/build-npm.sh",
  "scripts/tsconfig.npm.json",
];

/** A hash of everything `npm pack` builds the package from. */
function sourcesHash(): string {
  const hash = createHash("sha256");
  const add = (rel: string) => {
    const path = join(ROOT, rel);
    if (statSync(path).isDirectory()) { for (const name of readdirSync(path).sort()) add(join(rel, name)); }
    else hash.update(`${rel}\0`).update(readFileSync(path)).update("\0");
  };
  for (const rel of SOURCES) add(rel);
  return hash.digest("hex").slice(0, 16);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `fn` holding a lock directory (one maker at a time); a lock whose holder died is taken over. */
function locked<T>(lock: string, fn: () => T): T {
  const end = Date.now() + 300_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      let holder = 0;
      try {
        holder = Number(readFileSync(join(lock, "pid"), "utf8")); // not yet written: 0, wait
      } catch {
        // released meanwhile, or not yet written
      }
      if (holder && !alive(holder)) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > end) throw new Error(`${lock}: still held by pid ${holder} after 5 min`);
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
  writeFileSync(join(lock, "pid"), String(process.pid));
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function must(argv: string[], cwd: string): string {
  const env = { ...process.env };
  delete env.INIT_CWD; // as typed in a shell, not inside `npm test`
  const r = spawnSync(argv[0], argv.slice(1), { cwd, env, encoding: "utf8", timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${argv.join(" ")} (in ${cwd}) failed: ${r.error?.message ?? ""}${r.stderr}`);
  return r.stdout;
}

/** `npm pack` of this checkout into `dir`; returns the tarball's path. */
function pack(dir: string): string {
  return join(dir, must(["npm", "pack", "--silent", "--pack-destination", dir], ROOT).trim().split("\n").pop()!);
}

/**
 * Makes `dir` a user's project (a package.json, no deno.json) with `tarball` installed: from npm's cache
 * when it has every dependency (no network), else from the registry.
 */
export function installProject(dir: string, tarball: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: "app", private: true, type: "module", allowScripts: { bun: true } }),
  );
  try {
    must(["npm", "install", "--offline", "--no-audit", "--no-fund", tarball], dir);
  } catch {
    must(["npm", "install", "--prefer-offline", "--no-audit", "--no-fund", tarball], dir);
  }
}

/**
 * The shared project, made if this checkout's sources changed since: `{ dir, tarball }`. Its `deno.json`
 * (`nodeModulesDir: manual`, what Deno assumes beside a package.json) lets the suite run
 * `deno run -A --config DIR/deno.json npm:daemonic …` from any directory, resolving `npm:daemonic` to
 * this install as a user's own `deno run -A npm:daemonic …` does in their project.
 */
export function userProject(): { dir: string; tarball: string; config: string } {
  mkdirSync(CACHE, { recursive: true, mode: 0o755 });
  const dir = join(CACHE, `daemonic-project-${createHash("sha256").update(ROOT).digest("hex").slice(0, 12)}`);
  const stamp = join(dir, "sources");
  const result = { dir, tarball: join(dir, "daemonic.tgz"), config: join(dir, "deno.json") };
  const sources = sourcesHash();
  const fresh = () => existsSync(stamp) && readFileSync(stamp, "utf8") === sources;
  if (fresh()) return result;
  return locked(`${dir}.lock`, () => {
    if (fresh()) return result; // made by another suite meanwhile
    const next = mkdtempSync(`${dir}.new-`);
    try {
      renameSync(pack(next), join(next, "daemonic.tgz"));
      installProject(next, join(next, "daemonic.tgz"));
      // No lock file: the suite runs this project as other users too (--user tests), who may not write here.
      writeFileSync(join(next, "deno.json"), JSON.stringify({ nodeModulesDir: "manual", lock: false }));
      chmodSync(next, 0o755); // mkdtemp's 0700 would keep those users out
      writeFileSync(join(next, "sources"), sources);
      rmSync(dir, { recursive: true, force: true });
      renameSync(next, dir);
    } finally {
      rmSync(next, { recursive: true, force: true });
    }
    return result;
  });
}
