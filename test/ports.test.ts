/**
 * Black-box tests: a port served by one daemon's workers is refused to any other daemon (SO_REUSEPORT
 * would let it join and split the traffic), while the daemon's own rolling restart still shares it.
 * Under `bun test` the daemon is a built binary; under `deno test` it is the user's `deno run -A npm:daemonic run`.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { describe, test } from "node:test";
import {
  alive,
  childrenOf,
  eventually,
  exchange,
  fileSandbox,
  freePort,
  hammer,
  migrating,
  pidsMentioning,
  readOr,
  ROOT,
  run,
  RUNTIME,
  Sandbox,
  sandboxed,
  sleep,
  startDaemon,
  targetFor,
} from "./_helpers.ts";

const buildDir = fileSandbox();
const target = await targetFor(["app.ts", "serve.ts"], buildDir.dir);
const fixture = (name: string) => `${ROOT}/test/fixtures/${name}`;

/** Starts `entry` as daemon `id` on `port` with pid file and log `file`.pid/.log; tracks whatever it started. */
function daemon(sb: Sandbox, entry: string, id: string, file: string, port: number, extra: string[]) {
  // A name no other test uses: on the command line (--name), then in the process titles.
  const name = `${id}-${process.pid}-${port}`;
  const d = startDaemon(sb, target, entry, ["--name", name, ...extra], [String(port)], { files: file, mayFail: true });
  const running = () => pidsMentioning(name).map((pid) => sb.track(pid));
  return { ...d.r, master: d.pid, pidFile: d.pidFile, logFile: d.logFile, running };
}

async function answeringPids(port: number, tries: number): Promise<number[]> {
  const pids: number[] = [];
  for (let i = 0; i < tries; i++) pids.push(Number(/Hello from PID (\d+)/.exec(await exchange(port))?.[1]));
  return pids;
}

// A lossless rolling restart needs the kernel to hand a closing listener's queue to its siblings; restored after.
describe(`one daemon a port (${RUNTIME})`, () => {
  test(
    "a second daemon with workers on a port the first one's workers serve fails (69, names port and pid), leaves nothing; the first keeps all traffic and reloads losslessly",
    migrating(async (sb) => {
      const port = await freePort();
      const a = daemon(sb, "app.ts", "a", "a", port, ["--workers", "2"]);
      assert.equal(a.status, 0, `${a.stderr}\n${readOr(a.logFile)}`);
      const aWorkers = childrenOf(a.master);
      assert.equal(aWorkers.length, 2);
      assert.deepEqual(
        a.running().sort(),
        [a.master, ...aWorkers].sort(),
        "a daemon's processes are found by its name",
      );

      const b = daemon(sb, "app.ts", "b", "b", port, ["--workers", "2"]);
      assert.equal(b.status, 69, `B started: ${b.stdout} ${b.stderr}`);
      assert.equal(b.stdout, "");
      assert.match(b.stderr, new RegExp(`EADDRINUSE.*port ${port}`));
      assert.match(b.stderr, new RegExp(`pid ${a.master}\\b`), "the message names the daemon serving the port");
      assert.equal(b.stderr.trim().split("\n").length, 1, b.stderr);
      assert.ok(await eventually(() => b.running().length === 0, 3000), `B left ${b.running()} running`);

      const pids = await answeringPids(port, 40);
      for (const pid of pids) assert.ok(aWorkers.includes(pid), `pid ${pid}, not a worker of A, answered`);

      const h = hammer(port);
      await sleep(200);
      assert.equal(run(target.argv(fixture("app.ts"), ["--reload", "--pid-file", a.pidFile])).status, 0);
      assert.ok(await eventually(() => /rolling restart done/.test(readOr(a.logFile)), 15_000), readOr(a.logFile));
      const result = await h.stop();
      childrenOf(a.master).forEach((pid) => sb.track(pid));
      assert.ok(result.ok > 0);
      assert.deepEqual(result.failed, []);
      for (const pid of result.pids) {
        assert.ok(
          aWorkers.includes(pid) || childrenOf(a.master).includes(pid),
          `pid ${pid}, not a worker of A, answered`,
        );
      }
      assert.doesNotMatch(readOr(a.logFile), /EADDRINUSE/, "A's own new workers were refused");
      assert.equal(childrenOf(a.master).length, 2);
      for (const pid of aWorkers) assert.ok(!alive(pid), `old worker ${pid} still runs`);
    }),
  );

  test(
    "after A's pid file is deleted, a second daemon with the same pid file is refused (the registry finds A) and A keeps the port",
    sandboxed(async (sb) => {
      const port = await freePort();
      const a = daemon(sb, "serve.ts", "a", "a", port, ["--workers", "2"]);
      assert.equal(a.status, 0, `${a.stderr}\n${readOr(a.logFile)}`);
      rmSync(a.pidFile);
      const b = daemon(sb, "serve.ts", "b", "a", port, ["--workers", "1"]);
      // The registry still knows A by its pid-file path: B is refused before it binds anything.
      assert.equal(b.status, 75, `B started: ${b.stdout} ${b.stderr}`);
      assert.match(b.stderr, new RegExp(`already running as pid ${a.master} .*missing, found in the registry`));
      assert.ok(await eventually(() => b.running().length === 0, 3000), `B left ${b.running()} running`);
      const pids = await answeringPids(port, 20);
      for (const pid of pids) assert.ok(childrenOf(a.master).includes(pid), `pid ${pid}, not a worker of A, answered`);
    }),
  );

  test(
    "a single-process second daemon on the port fails with the kernel's EADDRINUSE (69)",
    sandboxed(async (sb) => {
      const port = await freePort();
      const a = daemon(sb, "app.ts", "a", "a", port, ["--workers", "2"]);
      assert.equal(a.status, 0, `${a.stderr}\n${readOr(a.logFile)}`);
      const c = daemon(sb, "app.ts", "c", "c", port, ["--no-keep-alive"]);
      assert.equal(c.status, 69, `C started: ${c.stdout} ${c.stderr}`);
      assert.match(c.stderr, /in use/i);
      assert.ok(await eventually(() => c.running().length === 0, 3000), `C left ${c.running()} running`);
      const pids = await answeringPids(port, 20);
      for (const pid of pids) assert.ok(childrenOf(a.master).includes(pid), `pid ${pid}, not a worker of A, answered`);
    }),
  );
});
