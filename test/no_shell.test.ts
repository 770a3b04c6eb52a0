/**
 * Runs where there is no shell and no coreutils (distroless images, a bare chroot): `--daemon` detaches
 * through a short-lived re-execution of the binary (the detach stage) instead of /bin/sh, `--logs` reads the
 * log itself instead of running tail, and a missing program is one line naming it (exit 72). On this machine
 * `DAEMONIC_WITHOUT=sh,tail` forces those paths; the bare root has neither program at all.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, existsSync, readFileSync, renameSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { after, describe, test } from "node:test";
import {
  alive,
  assertDaemonStdio,
  BUN,
  childrenOf,
  CLI,
  compiledTarget,
  DENO,
  eventually,
  exchange,
  fileSandbox,
  FIXTURES,
  freePort,
  get,
  hammer,
  inMask,
  migrating,
  portFromLog,
  procStat,
  procStatus,
  readOr,
  ROOT,
  run,
  RUNTIME,
  sandboxed,
  waitGone,
} from "./_helpers.ts";
import { buildBinary, debianNamespace, IS_ROOT, minimalRoot, skipUnlessRoot } from "./_roots.ts";

const buildDir = fileSandbox();
const server = join(FIXTURES, "server.ts");
const compiled = RUNTIME === "bun" ? await compiledTarget(["server.ts"], buildDir.dir) : undefined;
// One process per command, so a test stops a follower by its pid (`deno task` would run it as its child).
const runner = (args: string[]) =>
  compiled ? compiled.argv(server, args) : [DENO, "run", "-A", "--unstable-net", CLI, "run", server, ...args];
const withEnv = (env: Record<string, string>) => ({ env: { ...process.env, ...env } });

// A lossless rolling restart needs the kernel to hand a closing listener's queue to its siblings; restored after.
describe(`--daemon without /bin/sh, forced here (${RUNTIME})`, () => {
  test(
    "DAEMONIC_WITHOUT=sh: the detach stage is the second fork; daemon(7) holds, read from /proc",
    sandboxed(async (sb) => {
      const pidFile = sb.path("d.pid"), logFile = sb.path("d.log"), leak = sb.path("inherited-fd-file");
      writeFileSync(leak, "");
      const argv = runner([
        "--daemon",
        "--pid-file",
        pidFile,
        "--log-file",
        logFile,
        "--umask",
        "077",
        "--chdir",
        sb.dir,
        "--",
        "0",
      ]);
      // The launcher's parent holds fds 3, 4 and 9 and ignores HUP INT QUIT USR2 TERM, as a shell's redirections
      // and nohup or a trap leave them. As root, in its own mount namespace /bin/sh is /bin/false, so a launcher
      // that ran it fails.
      const inherit = `exec 3<"$0" 4<"$0" 9>>"$0" && trap '' HUP INT QUIT USR2 TERM && exec "$@"`;
      const launch = (env: Record<string, string>) =>
        run(
          IS_ROOT
            ? ["unshare", "--mount", "/bin/sh", "-c", `mount --bind /bin/false /bin/sh && ${inherit}`, leak, ...argv]
            : ["/bin/sh", "-c", inherit, leak, ...argv],
          withEnv(env),
        );
      if (IS_ROOT) {
        const throughSh = launch({});
        assert.equal(throughSh.status, 69, `the launcher did not run /bin/sh: ${throughSh.stdout} ${throughSh.stderr}`);
        assert.match(throughSh.stderr, /^Cannot start: the daemon exited during start-up without a report/);
        assert.ok(!existsSync(pidFile));
      }

      const r = launch({ DAEMONIC_WITHOUT: "sh" });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^\d+\n$/);
      const pid = sb.track(Number(r.stdout.trim()));
      assert.equal(readFileSync(pidFile, "utf8"), `${pid}\n`);
      const stat = procStat(pid);
      assert.equal(stat.ppid, 1, "reparented to init");
      assert.notEqual(stat.session, pid, "not the session leader (second fork)");
      assert.notEqual(stat.session, procStat(process.pid).session, "in a new session");
      assert.ok(!alive(stat.session), "the detach process, the session's leader, is still there");
      assert.equal(stat.ttyNr, 0, "no controlling tty");
      assertDaemonStdio(pid, logFile, leak);
      const ignored = procStatus(pid, "SigIgn");
      for (const [name, n] of [["HUP", 1], ["INT", 2], ["QUIT", 3], ["USR2", 12], ["TERM", 15]] as const) {
        assert.ok(!inMask(ignored, n), `SIG${name} still ignored (SigIgn ${ignored})`);
      }
      assert.equal(BigInt(`0x${procStatus(pid, "SigBlk")}`), 0n, "signal mask is empty");
      assert.equal(procStatus(pid, "Umask"), "0077");
      assert.equal(readlink(`/proc/${pid}/cwd`), sb.dir);
      assert.match(await get(await portFromLog(logFile)), /^Hello from PID \d+/);
      assert.equal(run(runner(["--status", "--pid-file", pidFile])).status, 0);
      assert.equal(run(runner(["--stop", "--pid-file", pidFile])).status, 0);
      assert.ok(waitGone(pid, 5000));
    }),
  );
});

describe(`daemonize() without /bin/sh, forced here (${RUNTIME})`, () => {
  test(
    "DAEMONIC_WITHOUT=sh: the script's detach stage starts it once as a daemon and exits, without running the script",
    sandboxed(async (sb) => {
      const pidFile = sb.path("lib.pid"), logFile = sb.path("lib.log");
      const argv = RUNTIME === "bun"
        ? [BUN, `${FIXTURES}/self-daemonize.ts`]
        : [DENO, "run", "-A", `${FIXTURES}/self-daemonize.ts`];
      const r = run([...argv, pidFile, logFile], { cwd: ROOT, ...withEnv({ DAEMONIC_WITHOUT: "sh" }) });
      assert.equal(r.status, 0, r.stderr);
      const pid = sb.track(Number(r.stdout));
      assert.equal(readOr(pidFile), `${pid}\n`);
      assert.equal(procStat(pid).ppid, 1);
      assert.notEqual(procStat(pid).session, pid);
      assert.equal(await exchange(await portFromLog(logFile)), `daemonized ${pid}\n`);
      assert.equal(readOr(logFile).match(/listening on/g)?.length, 1, readOr(logFile));
      process.kill(pid, "SIGTERM");
      assert.ok(waitGone(pid, 5000));
      assert.ok(!existsSync(pidFile));
    }),
  );
});

function readlink(path: string): string {
  return run(["readlink", path]).stdout.trim();
}

describe(`--logs without tail, forced here (${RUNTIME})`, () => {
  const env = withEnv({ DAEMONIC_WITHOUT: "tail" });

  test(
    "DAEMONIC_WITHOUT=tail: -n N prints what GNU tail -n N prints",
    sandboxed((sb) => {
      const log = sb.path("d.log");
      writeFileSync(
        log,
        `${Array.from({ length: 30 }, (_, i) => `line ${i + 1}`).join("\n")}\n\nno newline at the end`,
      );
      for (const n of ["0", "1", "2", "5", "40"]) {
        const ours = run(runner(["--logs", "-n", n, "--log-file", log]), env);
        assert.equal(ours.status, 0, ours.stderr);
        assert.equal(ours.stdout, run(["tail", "-n", n, log]).stdout, `-n ${n}`);
      }
      writeFileSync(log, "one\ntwo\n");
      assert.equal(run(runner(["--logs", "--log-file", log]), env).stdout, "one\ntwo\n");
    }),
  );

  test(
    "DAEMONIC_WITHOUT=tail: -f follows by name, across logrotate's create and copytruncate",
    sandboxed(async (sb) => {
      const log = sb.path("d.log");
      writeFileSync(log, "one\ntwo\n");
      const argv = runner(["--logs", "-f", "-n", "1", "--log-file", log]);
      const follower = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], ...env });
      sb.track(follower.pid);
      let out = "";
      follower.stdout!.on("data", (d) => out += d);
      assert.ok(await eventually(() => out === "two\n", 10_000), `--logs -f printed: ${out}`);
      appendFileSync(log, "three\n");
      assert.ok(await eventually(() => out.endsWith("three\n")), out);
      // create: the old file renamed (a writer may still finish a line there), a new one at the path.
      renameSync(log, `${log}.1`);
      appendFileSync(`${log}.1`, "four, late in the old file\n");
      writeFileSync(log, "five, in the new file\n");
      assert.ok(await eventually(() => out.endsWith("five, in the new file\n")), out);
      // copytruncate: emptied in place, then written again (shorter than what was read).
      truncateSync(log, 0);
      appendFileSync(log, "six\n");
      assert.ok(await eventually(() => out.endsWith("six\n")), out);
      assert.equal(out, "two\nthree\nfour, late in the old file\nfive, in the new file\nsix\n");
      follower.kill("SIGTERM");
      assert.ok(waitGone(follower.pid!, 5000));
    }),
  );
});

describe(`a root of only the binary and the libraries ldd names: no shell, no coreutils, no /run (${RUNTIME})`, {
  skip: skipUnlessRoot,
}, () => {
  test(
    "--daemon answers, --status, --reload, --logs (-f), --stop; --workers 2 reloads under a client; a missing program is one line",
    migrating(async (sb) => {
      const root = sb.path("root");
      const bin = minimalRoot(buildBinary("server.ts", sb.path("server")), root);
      for (const dir of ["bin", "sbin", "usr", "etc", "run"]) {
        assert.ok(!existsSync(join(root, dir)), `the bare root has /${dir}`);
      }
      const { daemons, exec, start } = await debianNamespace(sb, root);
      const app = (args: string[], env: Record<string, string> = {}) =>
        exec([bin, "--pid-file", "/tmp/d.pid", "--log-file", "/tmp/d.log", ...args], env);
      const log = join(root, "tmp", "d.log");

      // Forcing the setsid(1) fallback needs util-linux, which is not there: one line naming it, nothing left.
      let r = app(["--daemon", "--", "0"], { DAEMONIC_FFI_WITHOUT: "POSIX_SPAWN_SETSID" });
      assert.equal(r.status, 72, r.stderr);
      assert.equal(
        r.stderr,
        "Cannot run /usr/bin/setsid: posix_spawn /usr/bin/setsid: No such file or directory (ENOENT): this system lacks a program daemonic needs: install it\n",
      );
      assert.ok(!existsSync(join(root, "tmp", "d.pid")));
      assert.deepEqual(daemons(), []);

      r = app(["--daemon", "--", "0"]);
      assert.equal(r.status, 0, r.stderr);
      const [daemon] = daemons(); // reparented to the namespace's init
      assert.ok(daemon, "no daemon under the namespace's init");
      assert.notEqual(procStat(daemon).session, daemon, "the daemon leads its session");
      assert.match(await get(await portFromLog(log)), /^Hello from PID \d+/);
      assert.match(app(["--status"]).stdout, /running/);
      r = app(["--reload"]); // keep-alive: the entry's process replaced, successor first
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /reloaded: the entry's process \(pid \d+ → \d+\)/);
      assert.match(readOr(log), /master: reloaded: the entry's process/);
      assert.ok(await eventually(() => /rolling restart done/.test(readOr(log)), 15_000), readOr(log)); // the old one has drained

      r = app(["--logs", "-n", "3"]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, run(["tail", "-n", "3", log]).stdout);
      const follower = start([bin, "--pid-file", "/tmp/d.pid", "--logs", "-f", "-n", "1"]);
      let out = "";
      follower.stdout!.on("data", (d) => out += d);
      assert.ok(await eventually(() => out.endsWith("\n"), 10_000), `--logs -f printed: ${out}`);
      const before = out.length;
      assert.equal(app(["--reload"]).status, 0);
      assert.ok(
        await eventually(() => out.slice(before).includes("master: reloaded:")),
        `--logs -f missed the new line: ${out}`,
      );
      const followers = childrenOf(follower.pid!).map((p) => sb.track(p)); // nsenter forks the command
      for (const pid of followers) process.kill(pid, "SIGTERM");
      for (const pid of [follower.pid!, ...followers]) assert.ok(waitGone(pid, 5000), `follower ${pid} left`);

      assert.equal(app(["--stop"]).status, 0);
      assert.ok(waitGone(daemon, 5000));
      assert.equal(app(["--status"]).status, 3);

      writeFileSync(log, "");
      const port = await freePort(); // the workers share it
      r = app(["--daemon", "--workers", "2", "--", String(port)]);
      assert.equal(r.status, 0, r.stderr);
      const [master] = daemons();
      const workers = childrenOf(master).map((p) => sb.track(p));
      assert.equal(workers.length, 2);
      const client = hammer(port);
      assert.ok(await eventually(() => client.mark() > 0), "no answer before the reload");
      assert.equal(app(["--reload"]).status, 0);
      assert.ok(await eventually(() => /rolling restart done/.test(readOr(log)), 15_000), readOr(log));
      const mark = client.mark();
      assert.ok(await eventually(() => client.mark() > mark), "no answer after the reload");
      const { failed } = await client.stop();
      assert.deepEqual(failed, [], "the sequential client saw failures");
      const replaced = childrenOf(master).map((p) => sb.track(p));
      assert.equal(replaced.length, 2);
      for (const pid of workers) assert.ok(!replaced.includes(pid) && !alive(pid), `old worker ${pid} left`);
      assert.equal(app(["--stop"]).status, 0);
      for (const pid of [master, ...replaced]) assert.ok(waitGone(pid, 5000), `${pid} left behind`);
    }),
  );
});
