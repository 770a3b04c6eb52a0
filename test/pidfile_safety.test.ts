/**
 * Black-box tests of what a pid-file path can name and what another local user can do to a daemon:
 * files that are not pid files are never opened blocking, truncated or removed; a lost pid file is found
 * again through the registry; a read lock proves nothing; default paths and sidecars are private.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  type Stats,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import { entryPath } from "../src/registry.ts";
import {
  alive,
  eventually,
  fileSandbox,
  FIXTURES,
  readOr,
  run,
  RUNTIME,
  sandboxed,
  startDaemon,
  targetFor,
  TEST_USER,
  testUser,
  waitGone,
} from "./_helpers.ts";

const buildDir = fileSandbox({ shared: true }); // the second user runs the built binaries
const target = await targetFor(["server.ts", "throws.ts"], buildDir.dir);

const daemonic = (entry: string, args: string[], options = {}) =>
  run(target.argv(`${FIXTURES}/${entry}`, args), { timeout: 15_000, ...options });
/** The runner as the second user, with `env` set. */
const asUser = (entry: string, args: string[], env: Record<string, string>) =>
  run([
    "runuser",
    "-u",
    TEST_USER,
    "--",
    "env",
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    ...target.argv(`${FIXTURES}/${entry}`, args),
  ], { timeout: 30_000 });
const registryEntry = (pidFile: string) => entryPath(pidFile, "/run/daemonic"); // root's registry

describe(`pid file safety (${RUNTIME})`, () => {
  test(
    "--stop and --status leave a regular file that is not a pid file alone: one line, exit 73",
    sandboxed((sb) => {
      const config = sb.path("config.yaml");
      writeFileSync(config, "x\n");
      for (const action of ["--stop", "--status"]) {
        const r = daemonic("server.ts", [action, "--pid-file", config]);
        assert.equal(r.status, 73, `${action}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /config\.yaml is not a pid file: it holds something other than a pid/);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        assert.equal(readOr(config), "x\n", `${action} changed or removed it`);
      }
    }),
  );

  test(
    "--daemon with a failing entry refuses a file that is not a pid file, neither overwritten nor deleted",
    sandboxed((sb) => {
      const config = sb.path("config.yaml");
      writeFileSync(config, "port: 8080\n");
      const r = daemonic("throws.ts", ["--daemon", "--pid-file", config, "--", "timer"]);
      sb.track(Number(r.stdout.trim()));
      assert.equal(r.status, 73, r.stdout + r.stderr);
      assert.match(r.stderr, /config\.yaml is not a pid file/);
      assert.equal(readOr(config), "port: 8080\n");
    }),
  );

  test(
    "a FIFO, a device, a directory or a socket at the path is refused at once (73), not opened or removed",
    sandboxed(async (sb) => {
      const fifo = sb.path("fifo"), device = sb.path("null"), dir = sb.path("dir"), socket = sb.path("sock");
      assert.equal(run(["mkfifo", fifo]).status, 0);
      assert.equal(run(["mknod", device, "c", "1", "3"]).status, 0, "a character device like /dev/null");
      mkdirSync(dir);
      const server = createServer();
      await new Promise<void>((r) => server.listen(socket, () => r()));
      try {
        const kinds: [string, string, (s: Stats) => boolean][] = [
          [fifo, "a FIFO", (s) => s.isFIFO()],
          [device, "a character device", (s) => s.isCharacterDevice()],
          [dir, "a directory", (s) => s.isDirectory()],
          [socket, "a socket", (s) => s.isSocket()],
        ];
        for (const [path, kind, isKind] of kinds) {
          for (const args of [["--status"], ["--stop"], ["--daemon", "--", "timer"]]) {
            const r = daemonic("throws.ts", [args[0], "--pid-file", path, ...args.slice(1)]);
            sb.track(Number(r.stdout.trim()));
            assert.equal(r.status, 73, `${args[0]} on ${kind}: status ${r.status} signal ${r.signal} ${r.stderr}`);
            assert.equal(
              r.stderr.trim(),
              `${path} is not a pid file: it is ${kind}; daemonic leaves it alone: remove it yourself or pick another --pid-file`,
            );
            assert.ok(isKind(lstatSync(path)), `${kind} at ${path} was replaced or removed by ${args[0]}`);
          }
        }
      } finally {
        server.close();
      }
    }),
  );

  test(
    "a lost pid file: --status and --stop find the daemon in the registry and say the file is missing",
    sandboxed(async (sb) => {
      const dir = sb.path("run"), pidFile = sb.path("run/d.pid"), logFile = sb.path("d.log");
      mkdirSync(dir);
      const r = daemonic("server.ts", ["--daemon", "--pid-file", pidFile, "--log-file", logFile, "--", "0"]);
      const pid = sb.track(Number(r.stdout.trim()));
      assert.equal(r.status, 0, r.stderr);
      const entry = JSON.parse(readFileSync(registryEntry(pidFile), "utf8"));
      assert.deepEqual([entry.pidFile, entry.pid], [pidFile, pid]);
      assert.equal(statSync(registryEntry(pidFile)).mode & 0o777, 0o600);
      unlinkSync(pidFile);
      let status = daemonic("server.ts", ["--status", "--pid-file", pidFile]);
      assert.equal(status.status, 0, status.stdout + status.stderr);
      assert.match(status.stdout, new RegExp(`running \\(pid ${pid}\\).*pid file ${pidFile} is missing`));
      rmSync(dir, { recursive: true });
      status = daemonic("server.ts", ["--status", "--pid-file", pidFile]);
      assert.equal(status.status, 0, "the directory went too: " + status.stdout + status.stderr);
      const again = daemonic("server.ts", ["--daemon", "--pid-file", pidFile, "--", "0"]);
      sb.track(Number(again.stdout.trim()));
      assert.equal(again.status, 75, "a second daemon must not start: " + again.stderr);
      const reload = daemonic("server.ts", ["--reload", "--pid-file", pidFile]);
      assert.equal(reload.status, 0, reload.stderr);
      assert.match(reload.stdout, new RegExp(`pid file ${pidFile} is missing; signalled pid ${pid}`));
      assert.ok(
        await eventually(() => readOr(logFile).includes("master: reloaded: the entry's process")),
        readOr(logFile),
      );
      const stop = daemonic("server.ts", ["--stop", "--pid-file", pidFile]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.match(stop.stdout, new RegExp(`stopped \\(pid ${pid}.*pid file ${pidFile} was missing`));
      assert.ok(waitGone(pid, 5000), "the daemon still runs");
      assert.ok(!existsSync(registryEntry(pidFile)), "its registry entry is removed on exit");
      assert.equal(daemonic("server.ts", ["--status", "--pid-file", pidFile]).status, 3);
    }),
  );

  test(
    "a registry entry whose daemon was killed is stale: not running, and the entry is removed",
    sandboxed((sb) => {
      const pidFile = sb.path("d.pid");
      const r = daemonic("server.ts", ["--daemon", "--pid-file", pidFile, "--", "0"]);
      const pid = sb.track(Number(r.stdout.trim()));
      assert.equal(r.status, 0, r.stderr);
      process.kill(pid, "SIGKILL");
      assert.ok(waitGone(pid, 5000));
      unlinkSync(pidFile);
      assert.ok(existsSync(registryEntry(pidFile)), "SIGKILL leaves the entry");
      const status = daemonic("server.ts", ["--status", "--pid-file", pidFile]);
      assert.equal(status.status, 3, status.stdout);
      assert.ok(!existsSync(registryEntry(pidFile)), "the stale entry was removed");
    }),
  );

  test(
    "starting a daemon sweeps the registry entries of killed ones",
    sandboxed((sb) => {
      const killed = sb.path("killed.pid"), other = sb.path("other.pid");
      const first = sb.track(
        Number(daemonic("server.ts", ["--daemon", "--pid-file", killed, "--", "0"]).stdout.trim()),
      );
      process.kill(first, "SIGKILL");
      assert.ok(waitGone(first, 5000));
      assert.ok(existsSync(registryEntry(killed)), "SIGKILL leaves the entry");
      const r = daemonic("server.ts", ["--daemon", "--pid-file", other, "--", "0"]);
      const second = sb.track(Number(r.stdout.trim()));
      assert.equal(r.status, 0, r.stderr);
      assert.ok(!existsSync(registryEntry(killed)), "the killed daemon's entry is still there");
      assert.ok(existsSync(registryEntry(other)));
      assert.equal(daemonic("server.ts", ["--stop", "--pid-file", other]).status, 0);
      assert.ok(waitGone(second, 5000));
    }),
  );

  test(
    "another user's read lock on a stale root pid file fakes nothing: stale, replaced by --daemon, never signalled",
    sandboxed(async (sb) => {
      testUser();
      chmodSync(sb.dir, 0o755);
      const pidFile = sb.path("root.pid"), script = sb.path("rdlock.pl");
      writeFileSync(pidFile, "4194304\n", { mode: 0o644 }); // left by a crashed root daemon
      writeFileSync(
        script,
        `use Fcntl; open(my $f, "<", $ARGV[0]) or die "open: $!";
my $lock = pack("s s x4 q q l x4", F_RDLCK, 0, 0, 0, 0); fcntl($f, F_SETLK, $lock) or die "lock: $!";
$| = 1; print "$$\\n"; sleep 120;\n`,
      );
      const locker = spawn("runuser", ["-u", TEST_USER, "--", "perl", script, pidFile], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      locker.stdout!.on("data", (d) => out += d);
      try {
        assert.ok(await eventually(() => /^\d+\n/.test(out)), "the other user could not read-lock the pid file");
        const fake = sb.track(Number(out));
        const status = daemonic("server.ts", ["--status", "--pid-file", pidFile]);
        assert.equal(status.status, 1, status.stdout);
        assert.match(status.stdout, /not running, but pid file .* remains/);
        const r = daemonic("server.ts", ["--daemon", "--pid-file", pidFile, "--", "0"]);
        const pid = sb.track(Number(r.stdout.trim()));
        assert.equal(r.status, 0, r.stderr);
        assert.notEqual(pid, fake);
        assert.equal(readOr(pidFile), `${pid}\n`);
        const stop = daemonic("server.ts", ["--stop", "--pid-file", pidFile]);
        assert.match(stop.stdout, new RegExp(`stopped \\(pid ${pid}`));
        assert.ok(waitGone(pid, 5000));
        assert.ok(alive(fake), "--stop signalled the other user's process");
      } finally {
        locker.kill("SIGKILL");
      }
    }),
  );

  test(
    "a non-root user's default pid file lives in a private 0700 directory, with 0600 sidecars",
    sandboxed((sb) => {
      const { uid, gid } = testUser();
      chmodSync(sb.dir, 0o755);
      const xdg = sb.path("xdg"), logFile = sb.path("xdg/d.log");
      mkdirSync(xdg, { mode: 0o700 });
      chownSync(xdg, uid, gid);
      const r = asUser("server.ts", ["--daemon", "--log-file", logFile, "--", "0"], { XDG_RUNTIME_DIR: xdg });
      const pid = sb.track(Number(r.stdout.trim()));
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const dir = `${xdg}/daemonic`, stats = lstatSync(dir);
      assert.ok(
        stats.isDirectory() && stats.uid === uid && (stats.mode & 0o777) === 0o700,
        `mode ${(stats.mode & 0o777).toString(8)} uid ${stats.uid}`,
      );
      const pidName = readdirSync(dir).find((n) => n.endsWith(".pid"));
      assert.ok(pidName, `no pid file in ${dir}: ${readdirSync(dir)}`);
      assert.equal(readOr(`${dir}/${pidName}`), `${pid}\n`);
      assert.equal(statSync(`${dir}/${pidName}.log-path`).mode & 0o777, 0o600);
      const entry = readdirSync(dir).find((n) => n.endsWith(".daemon.json"));
      assert.ok(entry, `its registry entry is in the same private directory: ${readdirSync(dir)}`);
      assert.equal(statSync(`${dir}/${entry}`).mode & 0o777, 0o600);
      const stop = asUser("server.ts", ["--stop"], { XDG_RUNTIME_DIR: xdg });
      assert.equal(stop.status, 0, stop.stderr);
      assert.ok(waitGone(pid, 5000));
    }),
  );

  test(
    "an unsafe private directory (writable by others, or a symlink) is refused with one line, exit 73",
    sandboxed((sb) => {
      const { uid, gid } = testUser();
      chmodSync(sb.dir, 0o755);
      const xdg = sb.path("xdg"), elsewhere = sb.path("elsewhere");
      mkdirSync(xdg, { mode: 0o700 });
      chownSync(xdg, uid, gid);
      mkdirSync(`${xdg}/daemonic`, { mode: 0o777 });
      chmodSync(`${xdg}/daemonic`, 0o777);
      chownSync(`${xdg}/daemonic`, uid, gid);
      for (const action of ["--status", "--daemon"]) {
        const r = asUser("server.ts", [action, "--", "0"], { XDG_RUNTIME_DIR: xdg });
        sb.track(Number(r.stdout.trim()));
        assert.equal(r.status, 73, `${action}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr.trim(), /^Unsafe directory .*\/xdg\/daemonic: it is writable by others \(mode 777\)/);
      }
      rmSync(`${xdg}/daemonic`, { recursive: true });
      mkdirSync(elsewhere);
      symlinkSync(elsewhere, `${xdg}/daemonic`);
      const r = asUser("server.ts", ["--status"], { XDG_RUNTIME_DIR: xdg });
      assert.equal(r.status, 73, r.stdout + r.stderr);
      assert.match(r.stderr, /it is a symbolic link, not a directory/);
    }),
  );

  test(
    "a symlink planted at PIDFILE.log-path is not followed: the start fails (73), its target is untouched",
    sandboxed((sb) => {
      const pidFile = sb.path("d.pid"), victim = sb.path("victim");
      writeFileSync(victim, "precious\n");
      symlinkSync(victim, `${pidFile}.log-path`);
      const r = daemonic("server.ts", ["--daemon", "--pid-file", pidFile, "--log-file", sb.path("d.log"), "--", "0"]);
      const pid = sb.track(Number(r.stdout.trim()));
      assert.equal(readOr(victim), "precious\n");
      assert.equal(r.status, 73, `status ${r.status} pid ${pid}: ${r.stderr}`);
      assert.match(r.stderr, /d\.pid\.log-path: it is a symbolic link/);
      assert.ok(!existsSync(pidFile), "no pid file left behind");
    }),
  );

  test(
    "the log file is created with the daemon's --umask, not the caller's",
    sandboxed((sb) => {
      const callerUmask022 = ["/bin/sh", "-c", `umask 022; exec "$@"`, "sh"];
      const { pid, pidFile, logFile } = startDaemon(sb, target, "server.ts", ["--umask", "077"], ["0"], {
        prefix: callerUmask022,
      });
      assert.equal(statSync(logFile).mode & 0o777, 0o600);
      assert.equal(daemonic("server.ts", ["--stop", "--pid-file", pidFile]).status, 0);
      assert.ok(waitGone(pid, 5000));
    }),
  );
});
