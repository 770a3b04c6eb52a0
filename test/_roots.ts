/**
 * What the ship tests share: the cached Debian 11 root and qemu (scripts/test-roots.sh), a chrooted pid
 * namespace to run in, and a binary built with Bun whatever runtime runs the suite (the roots have none).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import process from "node:process";
import { BUN, childrenOf, CLI, commOf, eventually, FIXTURES, ROOT, run, type Sandbox } from "./_helpers.ts";

export const CACHE = process.env.DAEMONIC_TEST_CACHE ?? "/var/cache/daemonic-test";
export const IS_ROOT = process.getuid?.() === 0;
/** The reason to skip what needs root, or `false`. */
export const skipUnlessRoot: string | false = IS_ROOT
  ? false
  : "needs root: debootstrap, chroot and unshare (run the suite as root)";

/** Makes the cached roots (idempotent); fails loudly when it cannot. */
export function setup(...parts: string[]): void {
  const r = run(["bash", join(ROOT, "scripts", "test-roots.sh"), ...parts], {
    timeout: 600_000,
    stdio: ["ignore", "inherit", "pipe"],
  });
  if (r.status !== 0) throw new Error(`scripts/test-roots.sh ${parts.join(" ")} failed: ${r.stderr}`);
}

/** `daemonic build` of a fixture with Bun, whatever runtime runs the suite (the roots have no runtime). */
export function buildBinary(fixture: string, out: string, extra: string[] = []): string {
  const r = run([BUN, CLI, "build", join(FIXTURES, fixture), "-o", out, ...extra], { timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  return out;
}

/** A pid namespace chrooted into `root`: `exec(argv)` runs a command in it; killing its init ends them all. */
export async function debianNamespace(sb: Sandbox, root: string) {
  // Its init is a shell that sleeps in a loop: waiting for each sleep, it reaps the daemons that exit too.
  const ns = spawn("unshare", [
    "--mount",
    "--pid",
    "--fork",
    "--kill-child",
    "sh",
    "-c",
    `mount -t proc proc ${root}/proc && while sleep 0.1; do :; done`,
  ], { stdio: "ignore" });
  sb.track(ns.pid);
  let init = 0;
  assert.ok(
    await eventually(() =>
      (init = childrenOf(ns.pid!)[0] ?? 0) > 0 && childrenOf(init).some((p) => commOf(p) === "sleep")
    ),
    "the namespace's init did not start",
  );
  sb.track(init);
  const enter = ["nsenter", "-t", String(init), "-m", "-p", "chroot", root];
  const exec = (argv: string[], env: Record<string, string> = {}) =>
    run([...enter, ...argv], { env: { ...process.env, ...env } });
  /** A command left running in the namespace (nsenter forks it: its child is the command). */
  const start = (argv: string[]) => {
    const child = spawn(enter[0], [...enter.slice(1), ...argv], { stdio: ["ignore", "pipe", "pipe"] });
    sb.track(child.pid);
    return child;
  };
  /** The daemons the init adopted. */
  const daemons = () => childrenOf(init).filter((p) => commOf(p) !== "sleep").map((p) => sb.track(p));
  return { daemons, exec, start };
}

/**
 * A root as bare as a distroless image: `binary` as /NAME, the libraries `ldd` names, /dev/null, a writable
 * /tmp and an empty /proc (the namespace mounts it). No shell, no coreutils, no /run. Returns /NAME.
 */
export function minimalRoot(binary: string, root: string): string {
  for (const dir of ["proc", "dev", "tmp"]) mkdirSync(join(root, dir), { recursive: true });
  chmodSync(join(root, "tmp"), 0o1777);
  const ldd = run(["ldd", binary]);
  assert.equal(ldd.status, 0, ldd.stderr);
  for (const lib of ldd.stdout.match(/\/\S+/g) ?? []) {
    mkdirSync(join(root, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(root, lib)); // follows the symlinks ldd names
  }
  const mknod = run(["mknod", "-m", "666", join(root, "dev", "null"), "c", "1", "3"]);
  assert.equal(mknod.status, 0, mknod.stderr);
  copyFileSync(binary, join(root, basename(binary)));
  chmodSync(join(root, basename(binary)), 0o755);
  return `/${basename(binary)}`;
}
