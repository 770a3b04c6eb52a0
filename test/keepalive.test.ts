/**
 * Black-box tests of keep-alive (a `--daemon` without workers is a supervisor of one copy of the entry,
 * restarted when it dies), of the options a daemon remembers (`--restart`, `--stop` without the flags it was
 * started with) and of `--list` / `--status --json`. Under `bun test` the daemons are built binaries, under
 * `deno test` they run through the user's `deno run -A npm:daemonic run`. Each daemon gets a unique `--name`, because the
 * registry (as root, /run/daemonic) is shared with whatever else runs.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { after, describe, test } from "node:test";
import {
  alive,
  BUN,
  childrenOf,
  CLI,
  denoUserCommand,
  eventually,
  exchange,
  fileSandbox,
  FIXTURES,
  freePort,
  readOr,
  run,
  RUNTIME,
  Sandbox,
  sandboxed,
  targetFor,
  waitGone,
} from "./_helpers.ts";

const ENTRIES = ["plain.ts", "crashes.ts"];
const buildDir = fileSandbox();
const target = await targetFor(ENTRIES, buildDir.dir);
const runner = (entry: string, args: string[], cwd = tmpdir()) =>
  run(target.argv(`${FIXTURES}/${entry}`, args), { cwd });
const uniqueName = (what: string) => `ka-${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

/** Starts `entry` as a daemon with `args`; records the supervisor and its children; returns its pid. */
function start(sb: Sandbox, entry: string, args: string[], entryArgs: string[]): number {
  const r = runner(entry, ["--daemon", ...args, "--", ...entryArgs]);
  assert.equal(r.status, 0, r.stderr);
  const pid = sb.track(Number(r.stdout.trim()));
  childrenOf(pid).forEach((c) => sb.track(c));
  return pid;
}

/** Whether `port` answers, and from which pid. */
async function answerFrom(port: number): Promise<number | null> {
  try {
    return Number(/Hello from PID (\d+)/.exec(await exchange(port, "", 1000))?.[1]) || null;
  } catch {
    return null;
  }
}

describe(`keep-alive (${RUNTIME})`, () => {
  test(
    "kill -9 of the entry's process: the port answers again from a new pid, --status says running with 1 restart",
    sandboxed(async (sb) => {
      const port = await freePort();
      const [pidFile, log, name] = [sb.path("app.pid"), sb.path("app.log"), uniqueName("kill")];
      const master = start(sb, "plain.ts", ["--pid-file", pidFile, "--log-file", log, "--name", name], [String(port)]);
      const within = 2000; // the figure: a first crash is restarted at once, with no backoff
      assert.equal(readFileSync(pidFile, "utf8").trim(), String(master), "the pid file names the supervisor");
      const [entry] = childrenOf(master);
      assert.ok(entry, "the supervisor runs the entry in a child");
      assert.equal(await answerFrom(port), entry);
      process.kill(entry, "SIGKILL");
      let again: number | null = null;
      const end = Date.now() + within;
      while (Date.now() < end && !(again = await answerFrom(port))) await new Promise((r) => setTimeout(r, 20));
      assert.ok(again, `the port did not answer again within ${within} ms; log:\n${readOr(log)}`);
      sb.track(again);
      assert.notEqual(again, entry);
      assert.ok(alive(master), "the supervisor died with its entry");
      const status = runner("plain.ts", ["--status", "--pid-file", pidFile]);
      assert.equal(status.status, 0, status.stdout);
      assert.match(status.stdout, new RegExp(`running \\(pid ${master}\\)`));
      assert.match(status.stdout, new RegExp(`worker\\[1\\] pid ${again}, up \\d+ s, 1 restarts`));
      assert.match(
        status.stdout,
        /rolling restarts: (lossless|lossy)/,
        "a --reload of keep-alive is a rolling restart of one",
      );
      assert.match(readOr(log), new RegExp(`pid ${entry}\\) was killed by signal 9 .*restarting`));
      assert.equal(
        readOr(log).match(new RegExp(`^listening on ${port}$`, "gm"))?.length,
        2,
        "the entry's output of both runs is not in --log-file",
      );
      const stop = runner("plain.ts", ["--stop", "--pid-file", pidFile]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.ok(waitGone(master, 5000) && waitGone(again!, 5000), "--stop left the supervisor or its entry");
      assert.equal(existsSync(pidFile), false);
    }),
  );

  test(
    "--no-keep-alive: one process; kill -9 leaves it dead and --status says stale (exit 1)",
    sandboxed(async (sb) => {
      const port = await freePort();
      const pidFile = sb.path("app.pid");
      const pid = start(sb, "plain.ts", ["--no-keep-alive", "--pid-file", pidFile, "--name", uniqueName("single")], [
        String(port),
      ]);
      assert.deepEqual(childrenOf(pid), [], "a single-process daemon has no child");
      assert.equal(await answerFrom(port), pid);
      const upgrade = runner("plain.ts", ["--upgrade", "--pid-file", pidFile]);
      assert.equal(upgrade.status, 64, upgrade.stdout + upgrade.stderr);
      assert.match(
        upgrade.stderr,
        /^Cannot upgrade \S+: it runs the entry in one process \(--no-keep-alive\).*: use --restart\n$/,
      );
      assert.ok(alive(pid), "a refused --upgrade signalled the daemon");
      process.kill(pid, "SIGKILL");
      assert.ok(waitGone(pid, 5000));
      const status = runner("plain.ts", ["--status", "--pid-file", pidFile]);
      assert.equal(status.status, 1, status.stdout);
      assert.match(status.stdout, /stale/);
      assert.equal(await answerFrom(port), null);
      runner("plain.ts", ["--stop", "--pid-file", pidFile]); // removes the stale pid file
    }),
  );

  test(
    "--keep-alive in the foreground (as a unit runs it): a supervisor and one child; --reload replaces the child, successor first; TERM stops both",
    sandboxed(async (sb) => {
      const port = await freePort();
      const pidFile = sb.path("fg.pid");
      const argv = target.argv(`${FIXTURES}/plain.ts`, [
        "--keep-alive",
        "--pid-file",
        pidFile,
        "--name",
        uniqueName("fg"),
        "--",
        String(port),
      ]);
      const fg = spawn(argv[0], argv.slice(1), { stdio: "ignore" });
      sb.track(fg.pid!); // on Deno, `deno task`, whose child is the supervisor
      let first: number | null = null;
      for (const end = Date.now() + 10_000; !(first = await answerFrom(port)) && Date.now() < end;) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(first, "the foreground supervisor did not serve");
      const supervisor = sb.track(Number(readFileSync(pidFile, "utf8"))); // --pid-file: the foreground holds it
      const [entry] = childrenOf(supervisor).map((c) => sb.track(c));
      assert.equal(await answerFrom(port), entry, "the entry does not run in the supervisor's one child");
      const reload = runner("plain.ts", ["--reload", "--pid-file", pidFile]);
      assert.equal(reload.status, 0, reload.stderr);
      assert.match(reload.stdout, new RegExp(`reloaded: the entry's process \\(pid ${entry} → (\\d+)\\)`));
      const successor = sb.track(Number(/→ (\d+)/.exec(reload.stdout)![1]));
      assert.equal(await answerFrom(port), successor);
      assert.ok(waitGone(entry, 5000), "the old entry was not retired");
      process.kill(supervisor, "SIGTERM");
      const [code] = await once(fg, "exit");
      assert.equal(code, 0);
      assert.ok(waitGone(successor, 5000), "the entry outlived its supervisor");
    }),
  );

  test(
    "an entry crashing every 0.3 s: growing backoff in the log, the supervisor lives on, --stop ends it without SIGKILL",
    sandboxed(async (sb) => {
      const [pidFile, log] = [sb.path("app.pid"), sb.path("app.log")];
      const master = start(sb, "crashes.ts", [
        "--pid-file",
        pidFile,
        "--log-file",
        log,
        "--name",
        uniqueName("loop"),
        "--timeout",
        "5",
      ], ["0", "300"]);
      const delays = () => [...readOr(log).matchAll(/crash loop: restarting in ([\d.]+) s/g)].map((m) => Number(m[1]));
      assert.ok(await eventually(() => delays().length >= 3, 15_000), `no backoff in the log:\n${readOr(log)}`);
      const seen = delays();
      assert.ok(seen[2] > seen[1] && seen[1] > seen[0], `the delays do not grow: ${seen}`);
      assert.match(readOr(log), /crash after listening/);
      assert.ok(alive(master), "the supervisor died");
      childrenOf(master).forEach((c) => sb.track(c));
      const stop = runner("crashes.ts", ["--stop", "--pid-file", pidFile, "--timeout", "5"]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.match(stop.stdout, new RegExp(`stopped \\(pid ${master}\\)$`, "m"), "the stop needed SIGKILL");
      assert.ok(waitGone(master, 1000));
    }),
  );
});

describe(`remembered options (${RUNTIME})`, () => {
  test(
    "--restart --pid-file P alone, from another directory: the same workers, entry arguments and log file",
    sandboxed(async (sb) => {
      const port = await freePort();
      const [pidFile, log] = [sb.path("app.pid"), sb.path("app.log")];
      const first = start(sb, "plain.ts", [
        "--pid-file",
        pidFile,
        "--log-file",
        log,
        "--workers",
        "2",
        "--name",
        uniqueName("restart"),
      ], [String(port)]);
      const r = runner("plain.ts", ["--restart", "--pid-file", pidFile], "/");
      assert.equal(r.status, 0, r.stderr);
      const second = sb.track(Number(r.stdout.trim().split("\n").pop()));
      assert.ok(waitGone(first, 5000) && second !== first && alive(second));
      const workers = childrenOf(second);
      workers.forEach((w) => sb.track(w));
      assert.equal(workers.length, 2, "not 2 workers again");
      assert.ok(workers.includes((await answerFrom(port))!), "the entry did not get its port argument again");
      assert.match(readOr(log), new RegExp(`ready \\(pid ${second}, 2 workers\\)`), "the log file is not the same");
      const withFlag = runner("plain.ts", ["--restart", "--pid-file", pidFile, "--workers", "1"], "/");
      assert.equal(withFlag.status, 0, withFlag.stderr);
      const third = sb.track(Number(withFlag.stdout.trim().split("\n").pop()));
      childrenOf(third).forEach((w) => sb.track(w));
      assert.equal(childrenOf(third).length, 1, "--workers 1 given at --restart did not replace the remembered 2");
      assert.ok(childrenOf(third).includes((await answerFrom(port))!), "the port argument was lost with the new flag");
      assert.equal(runner("plain.ts", ["--stop", "--pid-file", pidFile]).status, 0);
      assert.ok(waitGone(third, 5000));
    }),
  );

  test(
    "--stop and --status without --pid-file find a daemon started with a custom one",
    sandboxed(async (sb) => {
      const name = uniqueName("find");
      const pidFile = sb.path(`${name}.pid`);
      const pid = start(sb, "plain.ts", ["--pid-file", pidFile, "--name", name], ["0"]);
      const relative = runner("plain.ts", ["--status", "--pid-file", `${name}.pid`], "/");
      assert.equal(relative.status, 0, `a relative --pid-file from another directory: ${relative.stdout}`);
      const status = runner("plain.ts", ["--status", "--name", name]);
      assert.equal(status.status, 0, status.stdout);
      assert.match(status.stdout, new RegExp(`running \\(pid ${pid}\\)`));
      const stop = runner("plain.ts", ["--stop", "--name", name]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.match(stop.stdout, new RegExp(`stopped \\(pid ${pid}\\)`));
      const bad = runner("plain.ts", [
        "--daemon",
        "--workers",
        "2",
        "--no-keep-alive",
        "--pid-file",
        sb.path("bad.pid"),
      ]);
      assert.equal(bad.status, 64);
      assert.match(bad.stderr, /^Invalid --no-keep-alive with --workers: .*\n$/);
      assert.equal(existsSync(sb.path("bad.pid")), false);
      assert.ok(waitGone(pid, 5000));
      assert.equal(existsSync(pidFile), false);
    }),
  );
});

/** `daemonic ls --json` on this runtime. */
function daemonicLs(): ReturnType<typeof run> {
  return RUNTIME === "bun" ? run([BUN, CLI, "ls", "--json"]) : run([...denoUserCommand(), "ls", "--json"]);
}

describe(`--list (${RUNTIME})`, () => {
  test(
    "--list --json and daemonic ls list two daemons of two binaries with every field; a killed one is shown stale, then pruned",
    sandboxed(async (sb) => {
      const port = await freePort();
      const a = { name: uniqueName("a"), pidFile: sb.path("a.pid"), log: sb.path("a.log") };
      const b = { name: uniqueName("b"), pidFile: sb.path("b.pid"), log: sb.path("b.log") };
      const pa = start(sb, "plain.ts", ["--pid-file", a.pidFile, "--log-file", a.log, "--name", a.name], [
        String(port),
      ]);
      const pb = start(sb, "crashes.ts", ["--pid-file", b.pidFile, "--log-file", b.log, "--name", b.name], [
        "0",
        "600000",
      ]);
      for (const listed of [runner("crashes.ts", ["--list", "--json"]), daemonicLs()]) {
        assert.equal(listed.status, 0, listed.stderr);
        const rows = JSON.parse(listed.stdout) as Record<string, unknown>[];
        const ra = rows.find((r) => r.pidFile === a.pidFile)!, rb = rows.find((r) => r.pidFile === b.pidFile)!;
        assert.ok(ra && rb, `not both listed: ${listed.stdout}`);
        for (const [row, pid, d] of [[ra, pa, a], [rb, pb, b]] as const) {
          assert.deepEqual(Object.keys(row).sort(), [
            "command",
            "cpu",
            "exe",
            "logFile",
            "name",
            "pid",
            "pidFile",
            "ports",
            "restarts",
            "rss",
            "settings",
            "startedAt",
            "status",
            "uptime",
            "workers",
          ]);
          assert.equal(row.name, d.name);
          assert.equal(row.pid, pid);
          assert.equal(row.status, "running");
          assert.equal(row.logFile, d.log);
          assert.equal(row.workers, 1);
          assert.equal(row.restarts, 0);
          assert.ok((row.rss as number) > 10 * 1024 * 1024, `rss ${row.rss}`);
          assert.ok(typeof row.cpu === "number" && row.cpu >= 0 && typeof row.uptime === "number");
          assert.ok(Math.abs((row.startedAt as number) - Date.now()) < 120_000);
          assert.equal(row.exe, readlinkExe(pid));
          assert.equal((row.settings as { pidFile: string }).pidFile, d.pidFile);
          assert.ok(Array.isArray((row.command as { args: string[] }).args));
          assert.equal((row.ports as number[]).length, 1);
        }
        assert.deepEqual(ra.ports, [port]);
        assert.deepEqual((ra.settings as { args: string[] }).args, [String(port)]);
      }
      const table = runner("plain.ts", ["--list"]);
      assert.match(table.stdout, /^name\s+pid\s+status\s+uptime\s+restarts\s+workers\s+rss\s+cpu\s+ports\s+log$/m);
      assert.match(
        table.stdout,
        new RegExp(
          `^${a.name}\\s+${pa}\\s+running\\s+\\d+s\\s+0\\s+1\\s+[\\d.]+M\\s+[\\d.]+%\\s+${port}\\s+${a.log}$`,
          "m",
        ),
      );
      const json = runner("plain.ts", ["--status", "--json", "--pid-file", a.pidFile]);
      assert.equal(json.status, 0);
      assert.equal(JSON.parse(json.stdout).pid, pa);
      process.kill(pb, "SIGKILL");
      assert.ok(waitGone(pb, 5000));
      const afterKill = JSON.parse(runner("plain.ts", ["--list", "--json"]).stdout) as {
        pidFile: string;
        status: string;
      }[];
      assert.notEqual(afterKill.find((r) => r.pidFile === b.pidFile)?.status, "running");
      const later = JSON.parse(runner("plain.ts", ["--list", "--json"]).stdout) as { pidFile: string }[];
      assert.equal(later.some((r) => r.pidFile === b.pidFile), false, "the stale entry was not pruned");
      assert.equal(runner("plain.ts", ["--stop", "--pid-file", a.pidFile]).status, 0);
      runner("crashes.ts", ["--stop", "--pid-file", b.pidFile]);
    }),
  );
});

function readlinkExe(pid: number): string {
  return run(["readlink", `/proc/${pid}/exe`]).stdout.trim();
}
