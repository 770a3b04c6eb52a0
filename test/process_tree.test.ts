/**
 * Black-box tests of the daemon's process tree: workers die with their master whatever their event loop
 * does, the runner as PID 1 reaps orphans and forwards signals, `--stop` ends the entry's children too, and
 * workers do not hand NODE_UNIQUE_ID to the entry's children. Under `bun test` the daemon is a built
 * binary; under `deno test` it is the user's `deno run -A npm:daemonic run`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  alive,
  BUN,
  childrenOf,
  CLI,
  commOf,
  DENO,
  eventually,
  fileSandbox,
  FIXTURES,
  freePort,
  get,
  procStat,
  readOr,
  run,
  RUNTIME,
  Sandbox,
  sandboxed,
  startDaemon,
  type Target,
  targetFor,
  waitGone,
} from "./_helpers.ts";

const buildDir = fileSandbox();
const target = await targetFor(["busy.ts", "orphans.ts", "tree.ts", "child-server.ts"], buildDir.dir);
/** The runner itself as the first process (under `deno task`, the task runner would be PID 1 instead). */
const direct: Target = RUNTIME === "bun" ? target : {
  name: "deno run src/cli.ts run",
  argv: (entry, args) => [DENO, "run", "-A", "--unstable-net", CLI, "run", entry, ...args],
};
const fixture = (name: string) => `${FIXTURES}/${name}`;

/** Starts `entry` with --daemon (pid file app.pid, log app.log); the test checks the launcher's status. */
const daemon = (sb: Sandbox, entry: string, options: string[], entryArgs: string[]) =>
  startDaemon(sb, target, entry, options, entryArgs, { files: "app", mayFail: true });

function stateOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return "";
  }
}

/** Zombies among the descendants of `pid`. */
function zombiesUnder(pid: number): number[] {
  const zombies: number[] = [];
  for (const child of childrenOf(pid)) {
    if (stateOf(child) === "Z") zombies.push(child);
    zombies.push(...zombiesUnder(child));
  }
  return zombies;
}

describe(`process tree (${RUNTIME})`, () => {
  test(
    "kill -9 of the master: its workers are gone within seconds even with their event loop spinning",
    sandboxed(async (sb) => {
      const spin = sb.path("spin");
      const d = daemon(sb, "busy.ts", ["--workers", "2"], [String(await freePort()), spin]);
      assert.equal(d.r.status, 0, `${d.r.stderr}\n${readOr(d.logFile)}`);
      const workers = childrenOf(d.pid).map((pid) => sb.track(pid));
      assert.equal(workers.length, 2);
      writeFileSync(spin, "");
      assert.ok(await eventually(() => readOr(d.logFile).match(/spinning/g)?.length === 2, 5000), readOr(d.logFile));
      process.kill(d.pid, "SIGKILL");
      for (const pid of workers) {
        assert.ok(await eventually(() => !alive(pid), 5000), `worker ${pid} outlived its master`);
      }
    }),
  );

  test(
    "a start that times out with 2 spinning workers leaves no process behind",
    sandboxed(async (sb) => {
      const spin = sb.path("spin");
      writeFileSync(spin, "");
      const d = daemon(sb, "busy.ts", ["--workers", "2", "--start-timeout", "3"], [String(await freePort()), spin]);
      assert.notEqual(d.r.status, 0);
      const log = readOr(d.logFile);
      assert.equal(log.match(/spinning/g)?.length, 2, log);
      // Titles replace command lines: the master's and the workers' pids come from the log.
      const pids = [...log.matchAll(/daemonic\[(\d+)\]: master|worker\[\d\] started \(pid (\d+)\)/g)].map((m) =>
        sb.track(Number(m[1] ?? m[2]))
      );
      assert.equal(new Set(pids).size, 3, log);
      assert.ok(await eventually(() => pids.every((pid) => !alive(pid)), 5000), `left behind: ${pids.filter(alive)}`);
    }),
  );

  test(
    "as PID 1 (unshare --pid) the runner reaps the orphans of the entry's children and forwards SIGTERM",
    sandboxed(async (sb) => {
      const log = sb.path("out.log");
      const out = openSync(log, "w");
      const unshare = spawn("unshare", [
        "--fork",
        "--pid",
        "--mount-proc",
        ...direct.argv(fixture("orphans.ts"), ["--", "40"]),
      ], { stdio: ["ignore", out, out] });
      closeSync(out);
      sb.track(unshare.pid);
      const exited = new Promise<number | null>((resolve) => unshare.on("exit", (code) => resolve(code)));
      assert.ok(await eventually(() => childrenOf(unshare.pid!).length === 1, 5000), "unshare started nothing");
      const init = sb.track(childrenOf(unshare.pid!)[0]); // killing it ends the whole namespace
      assert.ok(await eventually(() => /orphans made: 40/.test(readOr(log)), 20_000), readOr(log));
      // Each orphan sleeps 0.1 s after it is made: then it must have been reaped.
      assert.ok(await eventually(() => zombiesUnder(init).length === 0, 3000), `zombies: ${zombiesUnder(init)}`);
      process.kill(init, "SIGTERM");
      assert.equal(await exited, 0);
      assert.match(readOr(log), /child got SIGTERM/);
    }),
  );

  test(
    "as PID 1 the runner exits as its child did: 128 + the signal that killed it",
    sandboxed(async (sb) => {
      const unshare = spawn("unshare", [
        "--fork",
        "--pid",
        "--mount-proc",
        ...direct.argv(fixture("orphans.ts"), ["--", "1"]),
      ], { stdio: "ignore" });
      sb.track(unshare.pid);
      const exited = new Promise<number | null>((resolve) => unshare.on("exit", (code) => resolve(code)));
      assert.ok(await eventually(() => childrenOf(unshare.pid!).length === 1, 5000), "unshare started nothing");
      const init = sb.track(childrenOf(unshare.pid!)[0]);
      assert.ok(await eventually(() => childrenOf(init).length === 1, 10_000), "init started no child");
      process.kill(sb.track(childrenOf(init)[0]), "SIGKILL");
      assert.equal(await exited, 137);
    }),
  );

  for (const workers of [0, 2]) {
    test(
      `--stop ends the entry's children, its shell's job and its orphans${workers ? " (with workers)" : ""}`,
      sandboxed(async (sb) => {
        const d = daemon(sb, "tree.ts", workers ? ["--workers", String(workers)] : [], [
          String(workers ? await freePort() : 0),
        ]);
        assert.equal(d.r.status, 0, `${d.r.stderr}\n${readOr(d.logFile)}`);
        const lines = () => [...readOr(d.logFile).matchAll(/tree: (\d+) (\d+) (\d+)/g)];
        assert.ok(await eventually(() => lines().length === Math.max(1, workers), 5000), readOr(d.logFile));
        const tree = lines().flatMap((m) => m.slice(1).map(Number));
        for (const shell of lines().map((m) => Number(m[2]))) {
          assert.ok(
            await eventually(() => childrenOf(shell).length === 1, 5000),
            "the shell's background sleep did not start",
          );
          tree.push(...childrenOf(shell));
        }
        for (const pid of tree) sb.track(pid);
        for (const pid of tree) assert.ok(alive(pid), `${pid} is not running before the stop`);
        if (workers) { // the master is a subreaper: the orphans of its workers' shells are its children
          for (const m of lines()) {
            assert.equal(procStat(Number(m[3])).ppid, d.pid, `orphan ${m[3]} not adopted by the master`);
          }
        }
        const stop = run(target.argv(fixture("tree.ts"), ["--stop", "--pid-file", d.pidFile, "--timeout", "3"]));
        assert.equal(stop.status, 0, stop.stderr);
        assert.ok(waitGone(d.pid, 1000));
        for (const pid of tree) {
          assert.ok(waitGone(pid, 1000), `pid ${pid} (${readOr(`/proc/${pid}/cmdline`)}) outlived --stop`);
        }
      }),
    );
  }

  test(
    "--stop of a runner in a session whose leader lives (a terminal's) ends the runner's tree, not the session",
    sandboxed(async (sb) => {
      const pidFile = sb.path("app.pid"), bystander = sb.path("bystander.pid"), log = sb.path("out.log");
      const out = openSync(log, "w");
      const script = `sleep 1000 & echo $! > ${bystander}; "$@"; wait`;
      const leader = spawn("setsid", [
        "sh",
        "-c",
        script,
        "sh",
        ...target.argv(fixture("tree.ts"), ["--pid-file", pidFile, "--", "0"]),
      ], { stdio: ["ignore", out, out] });
      closeSync(out);
      const leaderPid = sb.track(leader.pid);
      assert.ok(
        await eventually(() => /tree: \d+ \d+ \d+/.test(readOr(log)) && readOr(pidFile) !== "", 10_000),
        readOr(log),
      );
      const sleeper = sb.track(Number(readOr(bystander)));
      const runner = sb.track(Number(readOr(pidFile)));
      const tree = /tree: (\d+) (\d+) (\d+)/.exec(readOr(log))!.slice(1).map((pid) => sb.track(Number(pid)));
      assert.equal(procStat(runner).session, leaderPid);
      const stop = run(target.argv(fixture("tree.ts"), ["--stop", "--pid-file", pidFile, "--timeout", "3"]));
      assert.equal(stop.status, 0, stop.stderr);
      assert.ok(waitGone(runner, 1000));
      for (const pid of tree.slice(0, 2)) assert.ok(waitGone(pid, 1000), `descendant ${pid} outlived --stop`);
      assert.ok(alive(leaderPid) && alive(sleeper), "--stop touched the session's other processes");
    }),
  );

  test(
    "the master adopts the orphans of its workers' children and reaps them: no zombie under it",
    sandboxed(async (sb) => {
      const d = daemon(sb, "orphans.ts", ["--workers", "1"], ["40"]);
      assert.equal(d.r.status, 0, `${d.r.stderr}\n${readOr(d.logFile)}`);
      for (const pid of childrenOf(d.pid)) sb.track(pid);
      const adopted = new Set<number>();
      assert.ok(
        await eventually(() => {
          for (const pid of childrenOf(d.pid)) if (commOf(pid) === "sleep") adopted.add(pid);
          return /orphans made: 40/.test(readOr(d.logFile));
        }, 20_000),
        readOr(d.logFile),
      );
      assert.ok(adopted.size > 0, "no orphan was re-parented to the master");
      assert.ok(await eventually(() => zombiesUnder(d.pid).length === 0, 3000), `zombies: ${zombiesUnder(d.pid)}`);
    }),
  );

  test(
    "a worker's own child server does not see NODE_UNIQUE_ID, and listens and answers",
    sandboxed(async (sb) => {
      const d = daemon(sb, "child-server.ts", ["--workers", "1"], [String(await freePort()), BUN]);
      assert.equal(d.r.status, 0, `${d.r.stderr}\n${readOr(d.logFile)}`);
      assert.ok(await eventually(() => /child pid (\d+)/.test(readOr(d.logFile)), 5000), readOr(d.logFile));
      sb.track(Number(/child pid (\d+)/.exec(readOr(d.logFile))![1]));
      assert.match(readOr(d.logFile), /NODE_UNIQUE_ID=undefined/);
      assert.ok(await eventually(() => /child listening on (\d+)/.test(readOr(d.logFile)), 5000), readOr(d.logFile));
      assert.equal(await get(Number(/child listening on (\d+)/.exec(readOr(d.logFile))![1])), "child answers\n");
    }),
  );
});
