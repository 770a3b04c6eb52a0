/**
 * Each stand-in for what glibc before 2.34 or Linux before 5.3 lacks, forced on this machine (unit and whole
 * daemon), and the runtime's own FFI on a Debian 11 root where addclosefrom_np is really missing.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  BUN,
  childrenOf,
  commOf,
  compiledTarget,
  DENO,
  eventually,
  FIXTURES,
  get,
  portFromLog,
  procFds,
  procStat,
  readOr,
  ROOT,
  run,
  runTarget,
  RUNTIME,
  sandboxed,
  type Target,
  waitGone,
} from "./_helpers.ts";
import { CACHE, debianNamespace, IS_ROOT, setup, skipUnlessRoot } from "./_roots.ts";

if (!IS_ROOT) console.log(`fallbacks.test.ts: SKIPPING the Debian 11 root test: ${skipUnlessRoot}`);
if (IS_ROOT) setup("bullseye");

describe(`glibc before 2.34 and Linux before 5.3, forced (${RUNTIME})`, () => {
  const WITHOUT =
    "posix_spawn_file_actions_addclosefrom_np,posix_spawn_file_actions_addchdir_np,pidfd_open,POSIX_SPAWN_SETSID";
  test(
    "--daemon --workers 2 without closefrom, addchdir, SETSID and pidfd_open: detached, no inherited fd, reload rolls, stop ends all",
    sandboxed(async (sb) => {
      const target: Target = RUNTIME === "bun" ? await compiledTarget(["server.ts"], sb.dir) : runTarget;
      const pidFile = sb.path("d.pid"), logFile = sb.path("d.log");
      const env = { ...process.env, DAEMONIC_FFI_WITHOUT: WITHOUT };
      const app = (args: string[]) =>
        run(target.argv(join(FIXTURES, "server.ts"), ["--pid-file", pidFile, "--log-file", logFile, ...args]), { env });
      // The launcher's parent shell holds fds 3, 4 and 9 that are not close-on-exec: only close actions stop them.
      const leak = sb.path("inherited-fd-file");
      writeFileSync(leak, "");
      const argv = target.argv(join(FIXTURES, "server.ts"), [
        "--pid-file",
        pidFile,
        "--log-file",
        logFile,
        "--daemon",
        "--workers",
        "2",
        "--",
        "0",
      ]);
      const r = run(["/bin/sh", "-c", `exec 3<"$0" 4<"$0" 9>>"$0"; exec "$@"`, leak, ...argv], { env });
      assert.equal(r.status, 0, r.stderr);
      const master = sb.track(Number(r.stdout.trim()));
      const workers = childrenOf(master).map((p) => sb.track(p));
      assert.equal(workers.length, 2);
      const stat = procStat(master);
      assert.notEqual(stat.session, master, "the daemon leads its session");
      assert.notEqual(stat.session, procStat(process.pid).session, "the daemon stayed in the caller's session");
      // The master reaps its workers (waitpid) and opens no pidfd, here where pidfd_open is forced missing.
      const held = [...procFds(master).values()];
      assert.ok(!held.some((fd) => fd.includes("pidfd")), `master fds: ${held}`);
      assert.equal(stat.ttyNr, 0);
      for (const pid of [master, ...workers]) {
        assert.deepEqual(
          [...procFds(pid)].filter(([, link]) => link === leak),
          [],
          `${pid} inherited the launcher's fds`,
        );
      }
      // Under deno the worker's command line is relative to the launch directory (`src/cli.ts`): it starts only
      // if the chdir stand-in worked. Its fds 0-3 are what the master gave it.
      for (const pid of workers) {
        const fds = procFds(pid);
        assert.equal(fds.get(0), "/dev/null");
        assert.match(fds.get(3) ?? "", /^socket:/); // the channel, close-on-exec in the entry
      }
      const port = await portFromLog(logFile);
      assert.match(await get(port), /^Hello/);
      assert.equal(app(["--reload"]).status, 0);
      assert.ok(await eventually(() => /rolling restart done/.test(readOr(logFile)), 15_000), readOr(logFile));
      const replaced = childrenOf(master).map((p) => sb.track(p));
      for (const pid of workers) {
        assert.ok(
          !replaced.includes(pid) && waitGone(pid, 2000),
          `old worker ${pid} left: ${workers} ${replaced} ${readOr(`/proc/${pid}/stat`)} ${readOr(logFile)}`,
        );
      }
      const stop = app(["--stop"]);
      assert.equal(stop.status, 0, stop.stderr);
      for (const pid of [master, ...replaced]) assert.ok(waitGone(pid, 5000), `${pid} left behind`);
      assert.ok(!readdirSync(sb.dir).includes("d.pid"));
    }),
  );
});

/** The runtime's raw libc binding, with `without` forced missing (the unit under test is the stand-in). */
async function libcWithout(without: string[]) {
  const { createLibc } = await import("../ffi/_libc.ts");
  const { openLibc } = RUNTIME === "bun" ? await import("../ffi/bun.ts") : await import("../ffi/deno.ts");
  return createLibc(openLibc("libc.so.6"), without);
}

describe(`each fallback, forced (${RUNTIME})`, () => {
  test(
    "spawn with setsid without POSIX_SPAWN_SETSID: the child leads a new session, in the same pid as the program",
    sandboxed(async (sb) => {
      const libc = await libcWithout(["POSIX_SPAWN_SETSID"]);
      const pid = sb.track(
        libc.spawn({
          path: "/bin/sleep",
          argv: ["sleep", "30"],
          env: {},
          fds: [{ path: "/dev/null", flags: 0 }, 1, 2],
          setsid: true,
        }),
      );
      assert.ok(await eventually(() => commOf(pid) === "sleep"), `pid ${pid} is ${commOf(pid)}`);
      assert.equal(procStat(pid).session, pid);
      assert.notEqual(procStat(pid).session, procStat(process.pid).session);
      process.kill(pid, "SIGKILL");
      libc.waitpid(pid);
    }),
  );

  test(
    "spawn without posix_spawn_file_actions_addclosefrom_np: an inheritable fd 40 of ours is closed in the child",
    sandboxed(async (sb) => {
      const libc = await libcWithout(["posix_spawn_file_actions_addclosefrom_np"]);
      const fd = libc.open(sb.path("held"), 0o100 | 1 /* O_CREAT|O_WRONLY */);
      libc.dup2(fd, 40); // dup2 clears close-on-exec: without a close action the child would inherit fd 40
      try {
        const out = sb.path("fds");
        const pid = sb.track(libc.spawn({
          path: "/bin/ls",
          argv: ["ls", "/proc/self/fd"],
          env: {},
          fds: [{ path: "/dev/null", flags: 0 }, { path: out, flags: 0o101 }, 2],
        }));
        libc.waitpid(pid);
        // ls's own fd 3 is the directory it lists.
        assert.deepEqual(readFileSync(out, "utf8").split("\n").filter(Boolean).map(Number), [0, 1, 2, 3]);
      } finally {
        libc.close(40);
        libc.close(fd);
      }
    }),
  );

  test(
    "spawn with cwd without posix_spawn_file_actions_addchdir_np: the child starts there, ours is unchanged",
    sandboxed(async (sb) => {
      const libc = await libcWithout(["posix_spawn_file_actions_addchdir_np"]);
      const before = process.cwd();
      const pid = sb.track(
        libc.spawn({
          path: "/bin/sh",
          argv: ["sh", "-c", "pwd > where"],
          env: {},
          fds: [{ path: "/dev/null", flags: 0 }, 1, 2],
          cwd: sb.dir,
        }),
      );
      assert.equal(process.cwd(), before);
      libc.waitpid(pid);
      assert.equal(readFileSync(sb.path("where"), "utf8").trim(), sb.dir);
      assert.throws(
        () => libc.spawn({ path: "/bin/true", argv: ["true"], env: {}, fds: [], cwd: sb.path("missing") }),
        /chdir .*missing.*ENOENT/,
      );
      assert.equal(process.cwd(), before);
    }),
  );

  test(
    "pidfdOpen without pidfd_open: pins the process, signals it, sees its exit, refuses a reaped one",
    sandboxed(async (sb) => {
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
    }),
  );
});

describe(`${RUNTIME}'s own FFI on Debian 11, where addclosefrom_np is really missing`, { skip: skipUnlessRoot }, () => {
  test(
    "the symbol fails at first use, not at load; spawn falls back: the child holds only its fds, in its cwd",
    sandboxed(async (sb) => {
      const root = join(CACHE, "bullseye");
      const dir = mkdtempSync(join(root, "tmp", "daemonic-ffi-"));
      try {
        const inside = dir.slice(root.length);
        cpSync(join(ROOT, "ffi"), join(dir, "ffi"), { recursive: true });
        const runtime = realpathSync(RUNTIME === "bun" ? BUN : DENO);
        copyFileSync(runtime, join(dir, "runtime"));
        spawnSync("chmod", ["755", join(dir, "runtime")]);
        writeFileSync(
          join(dir, "probe.ts"),
          `import { readFileSync } from "node:fs";
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
`,
        );
        const { exec } = await debianNamespace(sb, root);
        const r = exec(
          RUNTIME === "bun"
            ? [`${inside}/runtime`, `${inside}/probe.ts`]
            : [`${inside}/runtime`, "run", "-A", `${inside}/probe.ts`],
        );
        assert.equal(r.status, 0, r.stderr);
        const { missing, out } = JSON.parse(r.stdout.trim().split("\n").pop()!);
        assert.match(missing, /posix_spawn_file_actions_addclosefrom_np/);
        assert.equal(out, "/usr\n0\n1\n2\n3\n"); // ls's own fd 3 is the directory it lists; no fd 40
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
  );
});
