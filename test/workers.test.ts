/**
 * Black-box tests of pre-forked workers: the seed's 5-worker server, supervision, Unicorn's signals,
 * lossless rolling restarts. Under `bun test` the daemon is a built binary; under `deno test` it is the user's
 * `deno run -A npm:daemonic run`.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  alive,
  childrenOf,
  commOf,
  eventually,
  exchange,
  fileSandbox,
  freePort,
  hammer,
  migrating,
  readOr,
  ROOT,
  run,
  RUNTIME,
  Sandbox,
  sandboxed,
  sleep,
  startDaemon,
  targetFor,
  waitGone,
} from "./_helpers.ts";

const SEED = `${ROOT}/examples/seed.ts`;
const buildDir = fileSandbox();
const target = await targetFor([SEED, "app.ts", "serve.ts"], buildDir.dir);
const entryPath = (name: string) => name === "seed.ts" ? SEED : `${ROOT}/test/fixtures/${name}`;

interface Started {
  master: number;
  pidFile: string;
  logFile: string;
  port: number;
  workers(): number[];
}

/** Starts `entry` as a master of `workers` (pid file app.pid, log app.log) on a free port; records every process. */
async function startWorkers(
  sb: Sandbox,
  entry: string,
  workers: number,
  extra: string[] = [],
  entryArgs: string[] = [],
): Promise<Started> {
  const port = await freePort();
  const flags = ["--name", "app", "--workers", String(workers), ...extra];
  const d = startDaemon(sb, target, entryPath(entry), flags, [String(port), ...entryArgs], { files: "app" });
  return { master: d.pid, pidFile: d.pidFile, logFile: d.logFile, port, workers: d.children };
}

function control(entry: string, action: string, pidFile: string) {
  return run(target.argv(entryPath(entry), [action, "--pid-file", pidFile]));
}

async function answeringPids(port: number, tries: number): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < tries; i++) pids.add(Number(/Hello from PID (\d+)/.exec(await exchange(port))![1]));
  return pids;
}

describe(`workers (${RUNTIME})`, () => {
  test(
    "the seed's server as 5 workers: ready together, distinct pids answer, named master and worker[n], stop leaves nothing",
    sandboxed(async (sb) => {
      const s = await startWorkers(sb, "seed.ts", 5);
      const workers = s.workers();
      assert.equal(workers.length, 5);
      assert.equal(commOf(s.master), "app master");
      assert.deepEqual(workers.map(commOf).sort(), [1, 2, 3, 4, 5].map((n) => `app worker[${n}]`));
      const pids = await answeringPids(s.port, 60);
      assert.ok(pids.size >= 2, `only ${[...pids]} answered`);
      for (const pid of pids) assert.ok(workers.includes(pid), `${pid} is not a worker`);
      const status = control("seed.ts", "--status", s.pidFile);
      assert.equal(status.status, 0);
      assert.equal(
        status.stdout.match(/worker\[\d\] pid \d+, up \d+ s, 0 restarts, RSS \d+ kB/g)?.length,
        5,
        status.stdout,
      );
      const lossy = /rolling restarts: lossy/.test(status.stdout);
      assert.match(status.stdout, /rolling restarts: (lossless|lossy) \(/);
      assert.equal(
        /tcp_migrate_req is 0/.test(readOr(s.logFile)),
        lossy,
        "the start-up warning, exactly when restarts are lossy",
      );
      assert.equal(control("seed.ts", "--stop", s.pidFile).status, 0);
      for (const pid of [s.master, ...workers]) assert.ok(waitGone(pid, 5000), `${pid} left behind`);
      assert.ok(!existsSync(s.pidFile));
    }),
  );

  test(
    "Bun.serve / Deno.serve entries share the port across workers too",
    sandboxed(async (sb) => {
      const s = await startWorkers(sb, "serve.ts", 2);
      const pids = await answeringPids(s.port, 40);
      assert.equal(pids.size, 2, `answering: ${[...pids]}`);
    }),
  );

  test(
    "a worker killed with SIGKILL is replaced within 1 s",
    sandboxed(async (sb) => {
      const s = await startWorkers(sb, "app.ts", 2);
      const [victim] = s.workers();
      process.kill(victim, "SIGKILL");
      assert.ok(
        await eventually(() => s.workers().length === 2 && !s.workers().includes(victim), 1000),
        "not replaced within 1 s",
      );
      assert.ok(await eventually(() => /worker\[\d\] \(pid \d+\) was killed by signal 9/.test(readOr(s.logFile))));
      assert.match(control("app.ts", "--status", s.pidFile).stdout, /1 restarts/);
    }),
  );

  test(
    "a worker stuck in a busy loop is killed after --worker-timeout and replaced",
    sandboxed(async (sb) => {
      const s = await startWorkers(sb, "app.ts", 1, ["--worker-timeout", "1"]);
      const [stuck] = s.workers();
      await exchange(s.port, "GET /busy HTTP/1.0\r\n\r\n", 300).catch(() => {});
      assert.ok(await eventually(() => !alive(stuck), 5000), "the stuck worker was not killed");
      assert.match(
        readOr(s.logFile),
        new RegExp(`worker\\[1\\] \\(pid ${stuck}\\) timeout \\([\\d.]+ s > 1 s\\), killing`),
      );
      assert.ok(await eventually(() => s.workers().length === 1, 3000));
      assert.match(await exchangeEventually(s.port), /Hello from PID/); // one worker: a gap until it listens
    }),
  );

  test(
    "a worker that keeps crashing at start is restarted with growing delays; the master survives",
    sandboxed(async (sb) => {
      const marker = sb.path("crash");
      const s = await startWorkers(sb, "app.ts", 1, [], [marker]);
      writeFileSync(marker, "");
      process.kill(s.workers()[0], "SIGKILL");
      assert.ok(
        await eventually(() => /crash loop: restarting in 0\.4 s/.test(readOr(s.logFile)), 5000),
        readOr(s.logFile),
      );
      assert.match(readOr(s.logFile), /crashing on purpose/);
      assert.match(readOr(s.logFile), /crash loop: restarting in 0\.2 s/);
      assert.ok(alive(s.master));
      const readyBefore = readOr(s.logFile).match(/worker\[1\] ready/g)?.length ?? 0;
      rmSync(marker);
      // Once the marker is gone, the next restart (at most 1.6 s away on this backoff) comes up and serves.
      assert.ok(
        await eventually(() => (readOr(s.logFile).match(/worker\[1\] ready/g)?.length ?? 0) > readyBefore, 8000),
        readOr(s.logFile),
      );
      assert.equal(s.workers().length, 1);
      assert.match(await exchangeEventually(s.port), /Hello from PID/);
    }),
  );

  test(
    "TTIN adds a worker, TTOU retires one",
    sandboxed(async (sb) => {
      const s = await startWorkers(sb, "app.ts", 2);
      process.kill(s.master, "SIGTTIN");
      assert.ok(await eventually(() => s.workers().length === 3));
      assert.ok(await eventually(() => /worker\[3\] ready/.test(readOr(s.logFile))));
      // One at a time: two identical pending signals merge into one.
      process.kill(s.master, "SIGTTOU");
      assert.ok(await eventually(() => s.workers().length === 2), `workers: ${s.workers()}`);
      process.kill(s.master, "SIGTTOU");
      assert.ok(await eventually(() => s.workers().length === 1), `workers: ${s.workers()}`);
      assert.deepEqual(s.workers().map(commOf), ["app worker[1]"]);
    }),
  );

  test(
    "QUIT lets a slow request in flight finish, then everything exits",
    sandboxed(async (sb) => {
      const s = await startWorkers(sb, "app.ts", 2);
      const workers = s.workers();
      const slow = exchange(s.port, "GET /slow HTTP/1.0\r\n\r\n");
      assert.ok(
        await eventually(() => /slow request received/.test(readOr(s.logFile)), 10_000),
        "the slow request never reached a worker",
      );
      process.kill(s.master, "SIGQUIT");
      assert.match(await slow, /slow request done by \d+/);
      for (const pid of [s.master, ...workers]) assert.ok(waitGone(pid, 5000), `${pid} left behind`);
      assert.ok(!existsSync(s.pidFile));
    }),
  );
});

describe(`rolling restarts (${RUNTIME})`, () => {
  test(
    "HUP while a client hammers the port: no failed connection, then only new pids answer",
    migrating(async (sb) => {
      const s = await startWorkers(sb, "seed.ts", 2);
      const before = s.workers();
      const h = hammer(s.port);
      assert.ok(await eventually(() => h.mark() >= 100, 15_000), "the client got no answers before the restart");
      process.kill(s.master, "SIGHUP");
      assert.ok(await eventually(() => /rolling restart done/.test(readOr(s.logFile)), 15_000), readOr(s.logFile));
      const mark = h.mark();
      assert.ok(await eventually(() => h.mark() >= mark + 50, 15_000), "the client got no answers after the restart");
      const after = h.pidsSince(mark);
      const result = await h.stop();
      assert.deepEqual(result.failed, []);
      assert.ok(result.ok > 100, `only ${result.ok} answers`);
      for (const pid of before) assert.ok(!after.has(pid), `old worker ${pid} still answers`);
      assert.ok(after.size >= 1);
      for (const pid of before) assert.ok(!alive(pid));
    }),
  );

  test(
    "USR2 starts the executable on disk as a new master while a client hammers: no failed connection, the pid file follows",
    migrating(async (sb) => {
      const s = await startWorkers(sb, "seed.ts", 2);
      const before = s.workers();
      const h = hammer(s.port);
      assert.ok(await eventually(() => h.mark() >= 50, 15_000), "the client got no answers before the upgrade");
      process.kill(s.master, "SIGUSR2");
      assert.ok(await eventually(() => !alive(s.master), 15_000), "the old master did not retire");
      const newMaster = sb.track(Number(readFileSync(s.pidFile, "utf8")));
      assert.notEqual(newMaster, s.master);
      const newWorkers = childrenOf(newMaster).map((p) => sb.track(p));
      const mark = h.mark();
      assert.ok(await eventually(() => h.mark() >= mark + 50, 15_000), "the client got no answers after the upgrade");
      const after = h.pidsSince(mark);
      const result = await h.stop();
      assert.deepEqual(result.failed, []);
      for (const pid of after) assert.ok(newWorkers.includes(pid), `${pid} is not a new worker`);
      for (const pid of before) assert.ok(!alive(pid));
      assert.ok(!existsSync(`${s.pidFile}.oldbin`));
      assert.equal(control("seed.ts", "--status", s.pidFile).status, 0);
      assert.equal(control("seed.ts", "--stop", s.pidFile).status, 0);
      for (const pid of [newMaster, ...newWorkers]) assert.ok(waitGone(pid, 5000));
    }),
  );
});

async function exchangeEventually(port: number): Promise<string> {
  for (let i = 0; i < 50; i++) {
    try {
      return await exchange(port);
    } catch {
      await sleep(100);
    }
  }
  return exchange(port);
}
