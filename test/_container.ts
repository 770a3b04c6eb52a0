/**
 * A Debian bookworm container with systemd as PID 1 (systemd-nspawn), to test units against real systemd.
 * The root is built once by scripts/systemd-root.sh and cached; each container boots an overlay of it, so
 * nothing leaks between runs, and is stopped by the pid of its systemd-nspawn.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { alive, childrenOf, commOf, eventually, type Ran, ROOT, run, waitGone } from "./_helpers.ts";
import { userProject } from "./_project.ts";

/** Why a container cannot run here, or `undefined` when it can. */
export function containerSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "systemd-nspawn needs root: run the tests as root to test against real systemd";
  if (!existsSync("/sys/fs/cgroup/unified/cgroup.procs") && !existsSync("/sys/fs/cgroup/cgroup.procs")) {
    return "no cgroup2 hierarchy (/sys/fs/cgroup/unified or /sys/fs/cgroup): systemd in a container needs one";
  }
  return undefined;
}

/** A booted container; `binds` are host paths visible at the same path inside, read-only. */
export class Container {
  readonly dir = mkdtempSync(join(tmpdir(), "daemonic-nspawn-"));
  readonly merged = join(this.dir, "merged");
  /** The host pid of systemd-nspawn, and of the container's systemd (the target of nsenter). */
  nspawnPid = 0;
  initPid = 0;

  constructor(private readonly binds: string[]) {
    const root = run(["bash", join(ROOT, "scripts/systemd-root.sh")], { timeout: 600_000 });
    if (root.status !== 0) throw new Error(`scripts/systemd-root.sh failed: ${root.stderr}`);
    for (const d of ["upper", "work", "merged"]) mkdirSync(join(this.dir, d));
    const lower = root.stdout.trim();
    const mount = run([
      "mount",
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${lower},upperdir=${this.dir}/upper,workdir=${this.dir}/work`,
      this.merged,
    ]);
    if (mount.status !== 0) throw new Error(`overlay mount failed: ${mount.stderr}`);
  }

  /** Boots systemd and waits until `systemctl is-system-running` says running. */
  async boot(): Promise<void> {
    const binds = this.binds.flatMap((b) => [`--bind-ro=${b}`]);
    // --private-network: the container has its own loopback, so fixed ports (80) collide with nothing.
    const child = spawn("systemd-nspawn", [
      "-D",
      this.merged,
      "--boot",
      "--console=passive",
      "--register=no",
      "--keep-unit",
      "--private-network",
      ...binds,
    ], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d) => stderr += d);
    this.nspawnPid = child.pid!;
    // systemd-nspawn's first child is short-lived: the target is the child that became systemd.
    const isInit = (pid: number) => commOf(pid) === "systemd";
    const found = await eventually(() => (this.initPid = childrenOf(this.nspawnPid).find(isInit) ?? 0) > 0, 20_000);
    if (!found) throw new Error(`systemd-nspawn did not start systemd: ${stderr}`);
    const up = await eventually(
      () => /^(running|degraded)/.test(this.exec(["systemctl", "is-system-running"]).stdout),
      60_000,
    );
    if (!up) {
      throw new Error(
        `systemd did not finish booting: ${this.exec(["systemctl", "--failed", "--no-legend"]).stdout} ${stderr}`,
      );
    }
  }

  /** Runs a command inside (all of the container's namespaces, its root and working directory). */
  exec(argv: string[], options: { input?: string; timeout?: number } = {}): Ran {
    return run(["nsenter", "-t", String(this.initPid), "-a", ...argv], { timeout: 60_000, ...options });
  }

  /** Runs a host command in the container's network namespace only (host binaries, container ports). */
  net(argv: string[], options: { input?: string; timeout?: number } = {}): Ran {
    return run(["nsenter", "-t", String(this.initPid), "-n", ...argv], options);
  }

  /** One HTTP GET to 127.0.0.1:port inside the container, over a fresh connection. */
  get(port: number, path = "/"): string {
    return this.net(["socat", "-t", "2", "-T", "3", "-", `TCP:127.0.0.1:${port}`], {
      input: `GET ${path} HTTP/1.0\r\n\r\n`,
      timeout: 5000,
    }).stdout;
  }

  /** `systemctl show -p PROP --value UNIT`. */
  show(unit: string, prop: string): string {
    return this.exec(["systemctl", "show", "-p", prop, "--value", unit]).stdout.trim();
  }

  /** A file inside, e.g. /proc/PID/status for a pid systemd reported. */
  read(path: string): string {
    return this.exec(["cat", path]).stdout;
  }

  /** Powers the container off (SIGTERM to systemd-nspawn asks systemd to shut down), then SIGKILL. */
  shutdown(): void {
    if (!this.nspawnPid || !alive(this.nspawnPid)) return;
    process.kill(this.nspawnPid, "SIGTERM");
    if (!waitGone(this.nspawnPid, 20_000)) {
      process.kill(this.nspawnPid, "SIGKILL");
      waitGone(this.nspawnPid, 5000);
    }
    this.nspawnPid = this.initPid = 0;
  }

  /** Shuts down and removes the overlay; the cached root is untouched. */
  cleanup(): void {
    this.shutdown();
    // The container's last processes may hold the overlay a moment after systemd-nspawn exits.
    const end = Date.now() + 10_000;
    while (run(["umount", this.merged]).status !== 0 && Date.now() < end) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
    if (run(["mountpoint", "-q", this.merged]).status === 0) {
      throw new Error(`cannot unmount ${this.merged}: see fuser -m`);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The host paths a `daemonic run` target needs inside: the repo, its node_modules, the user project with the
 * packed package (test/_project.ts) and the runtime's cache. */
export function runtimeBinds(): string[] {
  const binds = [ROOT, realpathSync(join(ROOT, "node_modules")), userProject().dir];
  for (const cache of [process.env.DENO_DIR, `${process.env.HOME}/.cache/deno`]) {
    if (cache && existsSync(cache)) binds.push(realpathSync(cache));
  }
  return binds;
}

/** Polls `predicate` every 100 ms until true or `ms` passed (container commands are synchronous). */
export function waitUntil(predicate: () => boolean, ms = 10_000): boolean {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) return false;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
  return true;
}
