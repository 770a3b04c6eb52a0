/**
 * What the ship tests share: the cached Debian 11 root and qemu (scripts/test-roots.sh), a chrooted pid
 * namespace to run in, and a binary built with Bun whatever runtime runs the suite (the roots have none).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { BUN, childrenOf, CLI, commOf, eventually, FIXTURES, ROOT, run, type Sandbox } from "./_helpers.ts";

export const CACHE = process.env.DAEMONIC_TEST_CACHE ?? "/var/cache/daemonic-test";
export const IS_ROOT = process.getuid?.() === 0;
/** The reason to skip what needs root, or `false`. */
export const skipUnlessRoot: string | false = IS_ROOT ? false : "needs root: debootstrap, chroot and unshare (run the suite as root)";

/** Makes the cached roots (idempotent); fails loudly when it cannot. */
export function setup(...parts: string[]): void {
  const r = run(["bash", join(ROOT, "scripts", "test-roots.sh"), ...parts], { timeout: 600_000, stdio: ["ignore", "inherit", "pipe"] });
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
  const ns = spawn("unshare", ["--mount", "--pid", "--fork", "--kill-child", "sh", "-c", `mount -t proc proc ${root}/proc && while sleep 0.1; do :; done`], { stdio: "ignore" });
  sb.track(ns.pid);
  let init = 0;
  assert.ok(await eventually(() => (init = childrenOf(ns.pid!)[0] ?? 0) > 0 && childrenOf(init).some((p) => commOf(p) === "sleep")), "the namespace's init did not start");
  sb.track(init);
  const exec = (argv: string[]) => run(["nsenter", "-t", String(init), "-m", "-p", "chroot", root, ...argv]);
  /** The daemons the init adopted. */
  const daemons = () => childrenOf(init).filter((p) => commOf(p) !== "sleep").map((p) => sb.track(p));
  return { daemons, exec };
}

