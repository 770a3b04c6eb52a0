/**
 * Runs on the servers people have: a binary built here on a Debian 11 root (glibc 2.31, no
 * `posix_spawn_file_actions_addclosefrom_np`), and each libc/kernel fallback forced on this machine.
 * The Debian 11 root is made once by scripts/test-roots.sh and cached in /var/cache/daemonic-test.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { closeSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  alive, BUN, DENO, freePort, childrenOf, CLI, commOf, compiledTarget, eventually, FIXTURES, get, portFromLog, procFds, procStat, readOr,
  ROOT, run, runTarget, RUNTIME, Sandbox, sandboxed, type Target, waitGone,
} from "./_helpers.ts";

const CACHE = process.env.DAEMONIC_TEST_CACHE ?? "/var/cache/daemonic-test";
const IS_ROOT = process.getuid?.() === 0;
const skipUnlessRoot = IS_ROOT ? false : "needs root: debootstrap, chroot and unshare (run the suite as root)";
if (!IS_ROOT) console.log(`ship.test.ts: SKIPPING the Debian 11 root and qemu tests: ${skipUnlessRoot}`);

/** Makes the cached roots (idempotent); fails loudly when it cannot. */
function setup(...parts: string[]): void {
  const r = run(["bash", join(ROOT, "scripts", "test-roots.sh"), ...parts], { timeout: 600_000, stdio: ["ignore", "inherit", "pipe"] });
  if (r.status !== 0) throw new Error(`scripts/test-roots.sh ${parts.join(" ")} failed: ${r.stderr}`);
}

// Made at load time: a first debootstrap takes about a minute, longer than a test's timeout.
if (IS_ROOT) setup("bullseye", "arm64");
const buildDir = new Sandbox();
after(() => buildDir.cleanup());
/** `daemonic build` of a fixture with Bun, whatever runtime runs the suite (the roots have no runtime). */
function buildBinary(fixture: string, out: string, extra: string[] = []): string {
  const r = run([BUN, CLI, "build", join(FIXTURES, fixture), "-o", out, ...extra], { timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  return out;
}

/** A pid namespace chrooted into `root`: `exec(argv)` runs a command in it; killing its init ends them all. */
async function debianNamespace(sb: Sandbox, root: string) {
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

describe(`runs on Debian 11, glibc 2.31 (${RUNTIME})`, { skip: skipUnlessRoot }, () => {
  test("a binary built here: --daemon answers, --status, --reload, --stop; --workers 2 with a rolling reload", sandboxed(async (sb) => {
    const root = join(CACHE, "bullseye");
    const ldd = spawnSync("chroot", [root, "ldd", "--version"], { encoding: "utf8" });
    assert.match(ldd.stdout, /GLIBC 2\.31/);
    const dir = mkdtempSync(join(root, "tmp", "daemonic-"));
    try {
      const inside = dir.slice(root.length);
      copyFileSync(buildBinary("server.ts", join(buildDir.dir, "server")), join(dir, "server"));
      spawnSync("chmod", ["755", join(dir, "server")]);
      const { daemons, exec } = await debianNamespace(sb, root);
      const app = (args: string[]) => exec([`${inside}/server`, "--pid-file", `${inside}/d.pid`, "--log-file", `${inside}/d.log`, ...args]);

      let r = app(["--daemon", "--", "0"]);
      assert.equal(r.status, 0, r.stderr);
      const [master] = daemons(); // reparented to the namespace's init
      assert.ok(master, "no daemon under the namespace's init");
      assert.equal(procStat(master).session !== master, true, "the daemon leads its session");
      const port = await portFromLog(join(dir, "d.log"));
      assert.match(await get(port), /^Hello from PID \d+/);
      assert.match(app(["--status"]).stdout, /running/);
      assert.equal(app(["--reload"]).status, 0);
      assert.ok(await eventually(() => /reload hook ran/.test(readOr(join(dir, "d.log")))), readOr(join(dir, "d.log")));
      r = app(["--stop"]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(waitGone(master, 5000));
      assert.equal(app(["--status"]).status, 3);

      writeFileSync(join(dir, "d.log"), "");
      const port2 = await freePort(); // the workers share it
      r = app(["--daemon", "--workers", "2", "--", String(port2)]);
      assert.equal(r.status, 0, r.stderr);
      const [master2] = daemons();
      const workers = childrenOf(master2).map((p) => sb.track(p));
      assert.equal(workers.length, 2);
      assert.match(await get(port2), /^Hello/);
      assert.equal(app(["--reload"]).status, 0);
      assert.ok(await eventually(() => /rolling restart done/.test(readOr(join(dir, "d.log"))), 15_000), readOr(join(dir, "d.log")));
      const replaced = childrenOf(master2).map((p) => sb.track(p));
      assert.equal(replaced.length, 2);
      for (const pid of workers) assert.ok(!replaced.includes(pid) && !alive(pid), `old worker ${pid} left`);
      assert.match(await get(port2), /^Hello/);
      assert.equal(app(["--stop"]).status, 0);
      for (const pid of [master2, ...replaced]) assert.ok(waitGone(pid, 5000), `${pid} left behind`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));
});

describe(`${RUNTIME}'s own FFI on Debian 11, where addclosefrom_np is really missing`, { skip: skipUnlessRoot }, () => {
  test("the symbol fails at first use, not at load; spawn falls back: the child holds only its fds, in its cwd", sandboxed(async (sb) => {
    const root = join(CACHE, "bullseye");
    const dir = mkdtempSync(join(root, "tmp", "daemonic-ffi-"));
    try {
      const inside = dir.slice(root.length);
      cpSync(join(ROOT, "ffi"), join(dir, "ffi"), { recursive: true });
      const runtime = realpathSync(RUNTIME === "bun" ? BUN : DENO);
      copyFileSync(runtime, join(dir, "runtime"));
      spawnSync("chmod", ["755", join(dir, "runtime")]);
      writeFileSync(join(dir, "probe.ts"), `import { readFileSync } from "node:fs";
import { createLibc } from "./ffi/_libc.ts";
import { openLibc } from "./ffi/${RUNTIME}.ts";
const raw = openLibc("libc.so.6");
let missing = "";
try { void raw.fn.posix_spawn_file_actions_addclosefrom_np; } catch (e) { missing = String(e); }
const libc = createLibc(raw);
libc.dup2(libc.open("${inside}/held", 0o101), 40); // inheritable: only a close action keeps it from the child
const pid = libc.spawn({ path: "/bin/sh", argv: ["sh", "-c", "pwd; exec ls /proc/self/fd"], env: {}, cwd: "/usr",
  fds: [{ path: "/dev/null", flags: 0 }, { path: "${inside}/out", flags: 0o101 }, 2] });
libc.waitpid(pid);
console.log(JSON.stringify({ missing, out: readFileSync("${inside}/out", "utf8") }));
`);
      const { exec } = await debianNamespace(sb, root);
      const r = exec(RUNTIME === "bun" ? [`${inside}/runtime`, `${inside}/probe.ts`] : [`${inside}/runtime`, "run", "-A", `${inside}/probe.ts`]);
      assert.equal(r.status, 0, r.stderr);
      const { missing, out } = JSON.parse(r.stdout.trim().split("\n").pop()!);
      assert.match(missing, /posix_spawn_file_actions_addclosefrom_np/);
      assert.equal(out, "/usr\n0\n1\n2\n3\n"); // ls's own fd 3 is the directory it lists; no fd 40
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));
});

describe(`glibc before 2.34 and Linux before 5.3, forced (${RUNTIME})`, () => {
  const WITHOUT = "posix_spawn_file_actions_addclosefrom_np,posix_spawn_file_actions_addchdir_np,pidfd_open,POSIX_SPAWN_SETSID";
  test("--daemon --workers 2 without closefrom, addchdir, SETSID and pidfd_open: detached, no inherited fd, reload rolls, stop ends all", sandboxed(async (sb) => {
    const target: Target = RUNTIME === "bun" ? await compiledTarget(["server.ts"], sb.dir) : runTarget;
    const pidFile = sb.path("d.pid"), logFile = sb.path("d.log");
    const env = { ...process.env, DAEMONIC_FFI_WITHOUT: WITHOUT };
    const app = (args: string[]) => run(target.argv(join(FIXTURES, "server.ts"), ["--pid-file", pidFile, "--log-file", logFile, ...args]), { env });
    // The launcher's parent shell holds fds 3, 4 and 9 that are not close-on-exec: only close actions stop them.
    const leak = sb.path("inherited-fd-file");
    writeFileSync(leak, "");
    const argv = target.argv(join(FIXTURES, "server.ts"), ["--pid-file", pidFile, "--log-file", logFile, "--daemon", "--workers", "2", "--", "0"]);
    const r = run(["/bin/sh", "-c", `exec 3<"$0" 4<"$0" 9>>"$0"; exec "$@"`, leak, ...argv], { env });
    assert.equal(r.status, 0, r.stderr);
    const master = sb.track(Number(r.stdout.trim()));
    const workers = childrenOf(master).map((p) => sb.track(p));
    assert.equal(workers.length, 2);
    const stat = procStat(master);
    assert.notEqual(stat.session, master, "the daemon leads its session");
    assert.notEqual(stat.session, procStat(process.pid).session, "the daemon stayed in the caller's session");
    // The forcing took: the master watches its workers through /proc/PID directories, not pidfds.
    const watched = [...procFds(master).values()];
    for (const pid of workers) assert.ok(watched.includes(`/proc/${pid}`), `master fds: ${watched}`);
    assert.ok(!watched.some((link) => link.includes("pidfd")), `master fds: ${watched}`);
    assert.equal(stat.ttyNr, 0);
    for (const pid of [master, ...workers]) {
      assert.deepEqual([...procFds(pid)].filter(([, link]) => link === leak), [], `${pid} inherited the launcher's fds`);
    }
    // Under deno the worker's command line is relative to the launch directory (`src/cli.ts`): it starts only
    // if the chdir stand-in worked. Its fds 0-3 are what the master gave it.
    for (const pid of workers) {
      const fds = procFds(pid);
      assert.equal(fds.get(0), "/dev/null");
      assert.match(fds.get(3) ?? "", /^pipe:/);
    }
    const port = await portFromLog(logFile);
    assert.match(await get(port), /^Hello/);
    assert.equal(app(["--reload"]).status, 0);
    assert.ok(await eventually(() => /rolling restart done/.test(readOr(logFile)), 15_000), readOr(logFile));
    const replaced = childrenOf(master).map((p) => sb.track(p));
    for (const pid of workers) assert.ok(!replaced.includes(pid) && waitGone(pid, 2000), `old worker ${pid} left: ${workers} ${replaced} ${readOr(`/proc/${pid}/stat`)} ${readOr(logFile)}`);
    const stop = app(["--stop"]);
    assert.equal(stop.status, 0, stop.stderr);
    for (const pid of [master, ...replaced]) assert.ok(waitGone(pid, 5000), `${pid} left behind`);
    assert.ok(!readdirSync(sb.dir).includes("d.pid"));
  }));
});

describe(`an arm64 binary from --target linux-arm64, under Debian's qemu-user-static (${RUNTIME})`, { skip: skipUnlessRoot }, () => {
  test("its ELF header says aarch64; it runs in the foreground and as --daemon (binfmt_misc), answers, stops", sandboxed(async (sb) => {
    const binary = buildBinary("server.ts", sb.path("server-arm64"), ["--target", "linux-arm64"]);
    const elf = readFileSync(binary).subarray(0, 20);
    assert.equal(elf.subarray(1, 4).toString(), "ELF");
    assert.equal(elf.readUInt16LE(18), 183); // e_machine EM_AARCH64
    const registry = "/proc/sys/fs/binfmt_misc/qemu-aarch64";
    const registered = existsSync(registry);
    setup("binfmt"); // --daemon re-executes the binary: only binfmt_misc makes the kernel hand that to qemu
    try {
      const pidFile = sb.path("d.pid"), logFile = sb.path("d.log");
      const out = openSync(logFile, "w"); // in the foreground the output goes to stdout
      const fg = spawn(binary, ["--", "0"], { stdio: ["ignore", out, out] });
      closeSync(out);
      sb.track(fg.pid);
      assert.equal(readFileSync(`/proc/${fg.pid}/exe`).subarray(18, 20).readUInt16LE(0), 62, "not run by an x86-64 qemu"); // EM_X86_64
      assert.match(await get(await portFromLog(logFile)), /^Hello from PID \d+/);
      fg.kill("SIGTERM");
      assert.ok(waitGone(fg.pid!, 10_000));
      writeFileSync(logFile, "");
      const r = run([binary, "--pid-file", pidFile, "--log-file", logFile, "--daemon", "--", "0"], { timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      const pid = sb.track(Number(r.stdout.trim()));
      assert.ok(procStat(pid).session !== pid && procStat(pid).ppid === 1, "not detached");
      assert.match(await get(await portFromLog(logFile)), /^Hello/);
      assert.match(run([binary, "--pid-file", pidFile, "--status"]).stdout, /running/);
      assert.equal(run([binary, "--pid-file", pidFile, "--stop"], { timeout: 60_000 }).status, 0);
      assert.ok(waitGone(pid, 5000));
    } finally {
      if (!registered) writeFileSync(registry, "-1");
    }
  }));
});

describe(`daemonic build --target, bad input (${RUNTIME})`, () => {
  test("an unknown target or --runtime deno: one line naming the choices, exit 64, no file written", sandboxed((sb) => {
    const out = sb.path("never");
    const bad = run([BUN, CLI, "build", join(FIXTURES, "server.ts"), "-o", out, "--target", "windows-x64"]);
    assert.equal(bad.status, 64, bad.stderr);
    assert.equal(bad.stderr, "Invalid --target 'windows-x64': use one of linux-x64, linux-x64-baseline, linux-arm64, linux-x64-musl, linux-arm64-musl\n");
    const deno = run([BUN, CLI, "build", join(FIXTURES, "server.ts"), "-o", out, "--target", "linux-arm64", "--runtime", "deno"]);
    assert.equal(deno.status, 64, deno.stderr);
    assert.equal(deno.stderr.trim().split("\n").length, 1, deno.stderr);
    assert.ok(!existsSync(out));
  }));

  test("a runtime npm cannot fetch: exit 65, the error in one line after the progress line, nothing left in the cache", sandboxed((sb) => {
    const out = sb.path("never"), cache = sb.path("cache");
    const env = { ...process.env, DAEMONIC_CACHE: cache, npm_config_registry: "http://127.0.0.1:9/", npm_config_fetch_retries: "0" };
    const r = run([BUN, CLI, "build", join(FIXTURES, "server.ts"), "-o", out, "--target", "linux-x64-baseline"], { env });
    assert.equal(r.status, 65, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0], /^daemonic: fetching @oven\/bun-linux-x64-baseline@\d+\.\d+\.\d+ .* once$/);
    assert.match(lines[1], /^Cannot fetch @oven\/bun-linux-x64-baseline@[\d.]+ from npm \(.*ECONNREFUSED.*\): check the network and npm's registry setting$/);
    assert.ok(!existsSync(out));
    assert.deepEqual(readdirSync(cache), []);
  }));
});

describe(`as a user installs it: npm pack, npm i, npx daemonic build; a Deno entry imports it (${RUNTIME})`, () => {
  test("the tarball holds only dist/, README, LICENSE; the built binary serves hono as a daemon; deno runs npm:daemonic", sandboxed(async (sb) => {
    const pack = run(["npm", "pack", "--silent", "--pack-destination", sb.dir], { cwd: ROOT, timeout: 120_000 });
    assert.equal(pack.status, 0, pack.stderr);
    const tarball = join(sb.dir, pack.stdout.trim().split("\n").pop()!);
    const listed = run(["tar", "-tzf", tarball]).stdout.trim().split("\n").sort();
    assert.deepEqual(listed.filter((f) => !/^package\/dist\/(mod|src\/\w+|ffi\/\w+)\.(js|d\.ts)$/.test(f)), ["package/LICENSE", "package/README.md", "package/package.json"]);
    assert.ok(listed.includes("package/dist/src/cli.js") && listed.includes("package/dist/mod.d.ts"));

    const app = sb.path("app");
    mkdirSync(app);
    // What the README tells a user: approve bun's postinstall (it links the native runtime).
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module", allowScripts: { bun: true } }));
    const npm = (args: string[]) => run(["npm", ...args], { cwd: app, timeout: 180_000 });
    const installed = npm(["install", "--no-audit", "--no-fund", tarball, "hono"]);
    assert.equal(installed.status, 0, installed.stderr);
    assert.doesNotMatch(installed.stderr, /install-scripts|allowScripts/);
    writeFileSync(join(app, "server.ts"), `import { Hono } from "hono";
import { onShutdown } from "daemonic";
const app = new Hono().get("/", (c) => c.text("Hello from hono on " + (globalThis.Deno ? "Deno" : "Bun")));
onShutdown(() => console.log("bye"));
const port = Number(process.argv[2] ?? 0);
if (globalThis.Deno) Deno.serve({ port, hostname: "127.0.0.1", onListen: (a) => console.log("listening on " + a.port) }, app.fetch);
else console.log("listening on " + Bun.serve({ port, hostname: "127.0.0.1", fetch: app.fetch }).port);
`);
    const built = run(["npx", "daemonic", "build", "server.ts", "-o", "mydaemon"], { cwd: app, timeout: 120_000 });
    assert.equal(built.status, 0, built.stderr);
    assert.equal(built.stderr.replace(/^npm warn Unknown user config.*\n/m, ""), ""); // the progress line is for terminals

    const serves = async (argv: string[], banner: RegExp) => {
      const pidFile = sb.path("d.pid"), logFile = sb.path("d.log");
      writeFileSync(logFile, "");
      const r = run([...argv, "--daemon", "--pid-file", pidFile, "--log-file", logFile, "--", "0"], { cwd: app, timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      const pid = sb.track(Number(r.stdout.trim()));
      assert.equal(procStat(pid).ppid, 1);
      assert.match(await get(await portFromLog(logFile)), banner);
      const stop = run([...argv, "--stop", "--pid-file", pidFile], { cwd: app });
      assert.equal(stop.status, 0, stop.stderr);
      assert.ok(waitGone(pid, 5000));
      assert.match(readOr(logFile), /bye/);
    };
    await serves([join(app, "mydaemon")], /^Hello from hono on Bun$/);
    // A Deno user: no import map, no deno.json; Deno resolves "daemonic" and "hono" through package.json.
    await serves([DENO, "run", "-A", "npm:daemonic", "run", "server.ts"], /^Hello from hono on Deno$/);
  }));
});

/** The runtime's raw libc binding, with `without` forced missing (the unit under test is the stand-in). */
async function libcWithout(without: string[]) {
  const { createLibc } = await import("../ffi/_libc.ts");
  const { openLibc } = RUNTIME === "bun" ? await import("../ffi/bun.ts") : await import("../ffi/deno.ts");
  return createLibc(openLibc("libc.so.6"), without);
}

describe(`each fallback, forced (${RUNTIME})`, () => {
  test("spawn with setsid without POSIX_SPAWN_SETSID: the child leads a new session, in the same pid as the program", sandboxed(async (sb) => {
    const libc = await libcWithout(["POSIX_SPAWN_SETSID"]);
    const pid = sb.track(libc.spawn({ path: "/bin/sleep", argv: ["sleep", "30"], env: {}, fds: [{ path: "/dev/null", flags: 0 }, 1, 2], setsid: true }));
    assert.ok(await eventually(() => commOf(pid) === "sleep"), `pid ${pid} is ${commOf(pid)}`);
    assert.equal(procStat(pid).session, pid);
    assert.notEqual(procStat(pid).session, procStat(process.pid).session);
    process.kill(pid, "SIGKILL");
    libc.waitpid(pid);
  }));

  test("spawn without posix_spawn_file_actions_addclosefrom_np: an inheritable fd 40 of ours is closed in the child", sandboxed(async (sb) => {
    const libc = await libcWithout(["posix_spawn_file_actions_addclosefrom_np"]);
    const fd = libc.open(sb.path("held"), 0o100 | 1 /* O_CREAT|O_WRONLY */);
    libc.dup2(fd, 40); // dup2 clears close-on-exec: without a close action the child would inherit fd 40
    try {
      const out = sb.path("fds");
      const pid = sb.track(libc.spawn({
        path: "/bin/ls", argv: ["ls", "/proc/self/fd"], env: {}, fds: [{ path: "/dev/null", flags: 0 }, { path: out, flags: 0o101 }, 2],
      }));
      libc.waitpid(pid);
      // ls's own fd 3 is the directory it lists.
      assert.deepEqual(readFileSync(out, "utf8").split("\n").filter(Boolean).map(Number), [0, 1, 2, 3]);
    } finally {
      libc.close(40);
      libc.close(fd);
    }
  }));

  test("spawn with cwd without posix_spawn_file_actions_addchdir_np: the child starts there, ours is unchanged", sandboxed(async (sb) => {
    const libc = await libcWithout(["posix_spawn_file_actions_addchdir_np"]);
    const before = process.cwd();
    const pid = sb.track(libc.spawn({ path: "/bin/sh", argv: ["sh", "-c", "pwd > where"], env: {}, fds: [{ path: "/dev/null", flags: 0 }, 1, 2], cwd: sb.dir }));
    assert.equal(process.cwd(), before);
    libc.waitpid(pid);
    assert.equal(readFileSync(sb.path("where"), "utf8").trim(), sb.dir);
    assert.throws(() => libc.spawn({ path: "/bin/true", argv: ["true"], env: {}, fds: [], cwd: sb.path("missing") }), /chdir .*missing.*ENOENT/);
    assert.equal(process.cwd(), before);
  }));

  test("pidfdOpen without pidfd_open: pins the process, signals it, sees its exit, refuses a reaped one", sandboxed(async (sb) => {
    const libc = await libcWithout(["pidfd_open"]);
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    const pid = sb.track(child.pid);
    const exited = new Promise((resolve) => child.on("exit", resolve));
    const pidfd = libc.pidfdOpen(pid);
    try {
      assert.equal(readlinkSync(`/proc/self/fd/${pidfd}`), `/proc/${pid}`); // the stand-in, not a real pidfd
      assert.equal(libc.waitReadable(pidfd, 50), false);
      libc.pidfdSignal(pidfd, 15);
      assert.equal(libc.waitReadable(pidfd, 5000), true);
      assert.equal(await exited, null);
      assert.throws(() => libc.pidfdSignal(pidfd, 15), /ESRCH/);
    } finally {
      libc.close(pidfd);
    }
    assert.throws(() => libc.pidfdOpen(pid), /ESRCH/);
  }));
});
