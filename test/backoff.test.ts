/**
 * Black-box tests of the crash-loop backoff (issue 24): a worker killed from outside once ready is replaced at
 * once however often it happens; a genuine crash loop is backed off and says so in the log and in `--status`
 * (text and `--json`); a reload, TTOU and TTIN forget a slot's backoff. Under `bun test` the daemons are built
 * binaries, under `deno test` they run through `deno task daemonic run`.
 */
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  alive,
  eventually,
  fileSandbox,
  FIXTURES,
  freePort,
  readOr,
  run,
  RUNTIME,
  Sandbox,
  sandboxed,
  startDaemon,
  startTime,
  targetFor,
  waitGone,
} from "./_helpers.ts";

const buildDir = fileSandbox();
const target = await targetFor(["app.ts", "crashes.ts"], buildDir.dir);
const runner = (entry: string, args: string[]) => run(target.argv(`${FIXTURES}/${entry}`, args));
const uniqueName = (what: string) => `bo-${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

interface Daemon {
  master: number;
  pidFile: string;
  log: string;
  workers(): number[];
}

/** Starts `entry` as a daemon (`mode`: `--workers N` or nothing for keep-alive); records every process. */
function start(sb: Sandbox, entry: string, mode: string[], entryArgs: string[]): Daemon {
  const d = startDaemon(sb, target, entry, [...mode, "--name", uniqueName("d")], entryArgs, { files: entry });
  return { master: d.pid, pidFile: d.pidFile, log: d.logFile, workers: d.children };
}

/** How many times the log says `pattern`. */
const count = (log: string, pattern: RegExp) =>
  readOr(log).match(new RegExp(pattern.source, `${pattern.flags}g`))?.length ?? 0;

/** The master's own timestamp on the first log line matching `pattern` after `skip` such lines (ms), or NaN. */
function loggedAt(log: string, pattern: RegExp, skip = 0): number {
  const line = readOr(log).split("\n").filter((l) => pattern.test(l))[skip];
  return line ? Date.parse(line.split(" ")[0]) : NaN;
}

const MODES: [string, string[]][] = [["--workers 2", ["--workers", "2"]], ["keep-alive", []]];

describe(`crash-loop backoff (${RUNTIME})`, () => {
  for (const [label, mode] of MODES) {
    test(
      `${label}: kill -9 of the youngest worker, 5 times each once it is ready: restarted at once every time, no backoff`,
      sandboxed(async (sb) => {
        const d = start(sb, "app.ts", mode, [String(await freePort())]);
        for (let kill = 1; kill <= 5; kill++) {
          const ready = count(d.log, /worker\[\d\] ready/);
          const youngest = d.workers().sort((a, b) => startTime(b) - startTime(a))[0];
          process.kill(youngest, "SIGKILL");
          assert.ok(
            await eventually(
              () => count(d.log, /worker\[\d\] ready/) > ready && !d.workers().includes(youngest),
              15_000,
            ),
            readOr(d.log),
          );
        }
        assert.equal(count(d.log, /was killed by signal 9 after [\d.]+ s; restarting$/m), 5, readOr(d.log));
        assert.doesNotMatch(readOr(d.log), /crash loop/);
        const status = runner("app.ts", ["--status", "--pid-file", d.pidFile]);
        assert.equal(status.status, 0, status.stdout);
        assert.doesNotMatch(status.stdout, /crash loop/);
        assert.equal(runner("app.ts", ["--stop", "--pid-file", d.pidFile]).status, 0);
        assert.ok(waitGone(d.master, 5000));
      }),
    );

    test(
      `${label}: an entry that throws 1 s after ready is backed off; the log and --status (text and --json) say no worker is serving`,
      sandboxed(async (sb) => {
        const d = start(sb, "crashes.ts", [...mode, "--timeout", "5"], [String(await freePort()), "1000"]);
        const delays = () =>
          [
            ...readOr(d.log).matchAll(
              /exited with code 1 after [\d.]+ s(?:: .*)?; crash loop: restarting in ([\d.]+) s/g,
            ),
          ].map((m) => Number(m[1]));
        assert.ok(
          await eventually(() => delays().some((s) => s >= 0.8), 60_000),
          `no backoff up to 0.8 s:\n${readOr(d.log)}`,
        );
        // Once every slot waits at the same moment (the waits grow, so it comes), the master says the port is empty.
        const empty = /ERROR .*master: crash loop: no worker is serving; worker\[\d\] restarts in [\d.]+ s/;
        assert.ok(
          await eventually(() => empty.test(readOr(d.log)), 60_000),
          `no line saying the port is empty:\n${readOr(d.log)}`,
        );
        let text = "", json: { crashLoop?: { worker: number; crashes: number; restartAt: number }[] } = {};
        // The slots wait ever longer (1.6 s, 3.2 s …): --status sees it while they wait.
        assert.ok(
          await eventually(() =>
            /no worker is serving: crash loop/.test(
              text = runner("crashes.ts", ["--status", "--pid-file", d.pidFile]).stdout,
            ), 60_000),
          text,
        );
        assert.match(text, /worker\[\d\] crash loop: \d+ crashes in a row, restarting in [\d.]+ s/);
        assert.ok(
          await eventually(
            () =>
              (json = JSON.parse(runner("crashes.ts", ["--status", "--json", "--pid-file", d.pidFile]).stdout))
                .crashLoop !== undefined,
            60_000,
          ),
        );
        const [slot] = json.crashLoop!;
        assert.ok(
          slot && slot.worker >= 1 && slot.crashes >= 2 && Math.abs(slot.restartAt - Date.now()) < 60_000,
          JSON.stringify(json.crashLoop),
        );
        assert.ok(alive(d.master), "the master died");
        d.workers();
        const stop = runner("crashes.ts", ["--stop", "--pid-file", d.pidFile, "--timeout", "5"]);
        assert.match(stop.stdout, new RegExp(`stopped \\(pid ${d.master}\\)$`, "m"), "the stop needed SIGKILL");
        assert.ok(waitGone(d.master, 5000));
      }),
    );
  }

  /** Crashes slot 2 of `d` (app.ts, `marker` made) until its backoff is 3.2 s; the crash's time in the master's log. */
  async function backOffSlot2(d: Daemon, marker: string): Promise<number> {
    writeFileSync(marker, "");
    const before = count(d.log, /restarting in 3\.2 s/);
    const slot2 = [...readOr(d.log).matchAll(/worker\[2\] ready \(pid (\d+)\)/g)].pop()![1];
    process.kill(Number(slot2), "SIGKILL");
    assert.ok(await eventually(() => count(d.log, /restarting in 3\.2 s/) > before, 60_000), readOr(d.log));
    return loggedAt(d.log, /worker\[2\] .*crash loop: restarting in 3\.2 s/, before);
  }

  test(
    "--workers 2: a reload's new workers do not inherit the backoff of a crashing slot",
    sandboxed(async (sb) => {
      const marker = sb.path("crash");
      const d = start(sb, "app.ts", ["--workers", "2"], [String(await freePort()), marker]);
      const crashedAt = await backOffSlot2(d, marker);
      rmSync(marker);
      const started = count(d.log, /worker\[2\] started/);
      process.kill(d.master, "SIGHUP");
      assert.ok(
        await eventually(
          () => count(d.log, /worker\[2\] ready/) > 1 && /rolling restart done/.test(readOr(d.log)),
          30_000,
        ),
        readOr(d.log),
      );
      const restartedAt = loggedAt(d.log, /worker\[2\] started/, started);
      assert.ok(
        restartedAt - crashedAt < 3000,
        `worker[2] waited out its backoff after the reload: ${restartedAt - crashedAt} ms\n${readOr(d.log)}`,
      );
      assert.equal(d.workers().length, 2);
    }),
  );

  test(
    "--workers 2: TTOU forgets the backoff of the slot it retires; TTIN then starts a worker at once",
    sandboxed(async (sb) => {
      const marker = sb.path("crash");
      const d = start(sb, "app.ts", ["--workers", "2"], [String(await freePort()), marker]);
      const crashedAt = await backOffSlot2(d, marker);
      rmSync(marker);
      process.kill(d.master, "SIGTTOU");
      assert.ok(await eventually(() => /SIGTTOU: retiring worker\[2\]/.test(readOr(d.log)), 10_000), readOr(d.log));
      // The slot held no worker (it was waiting): --status drops it at once, not at an exit that never comes.
      let status = "";
      assert.ok(
        await eventually(
          () => !/worker\[2\]/.test(status = runner("app.ts", ["--status", "--pid-file", d.pidFile]).stdout),
          2500,
        ),
        status,
      );
      const started = count(d.log, /worker\[2\] started/);
      process.kill(d.master, "SIGTTIN");
      assert.ok(await eventually(() => count(d.log, /worker\[2\] started/) > started, 10_000), readOr(d.log));
      const restartedAt = loggedAt(d.log, /worker\[2\] started/, started);
      assert.ok(
        restartedAt - crashedAt < 3000,
        `TTIN's worker[2] waited out the old backoff: ${restartedAt - crashedAt} ms\n${readOr(d.log)}`,
      );
      assert.ok(
        await eventually(() => d.workers().length === 2 && count(d.log, /worker\[2\] ready/) >= 2, 15_000),
        readOr(d.log),
      );
    }),
  );
});
