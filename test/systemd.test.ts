/** sd_notify: under systemd's Type=notify the entry runs in the foreground and systemd hears its states. */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { existsSync } from "node:fs";
import {
  BUN,
  childrenOf,
  CLI,
  DENO,
  eventually,
  FIXTURES,
  freePort,
  get,
  readOr,
  RUNTIME,
  Sandbox,
  sandboxed,
  waitGone,
} from "./_helpers.ts";

/** A stand-in for systemd's notify socket: socat appends every datagram it receives to `received`. */
async function notifyReceiver(sb: Sandbox): Promise<{ socket: string; received: string }> {
  const socket = sb.path("notify.sock"), received = sb.path("received");
  const receiver = spawn("socat", ["-u", `UNIX-RECV:${socket}`, `OPEN:${received},creat,append`], { stdio: "ignore" });
  sb.track(receiver.pid);
  assert.ok(await eventually(() => spawnSync("test", ["-S", socket]).status === 0), "socat did not bind");
  return { socket, received };
}

describe(`systemd notify (${RUNTIME})`, () => {
  test(
    "Type=notify: READY=1 with MAINPID once the port accepts, RELOADING=1/READY=1 on HUP, STOPPING=1 on TERM",
    sandboxed(async (sb) => {
      const { socket, received } = await notifyReceiver(sb);
      const port = await freePort();
      const argv = RUNTIME === "bun" ? [BUN, CLI, "run"] : [DENO, "run", "-A", CLI, "run"];
      const child = spawn(argv[0], [...argv.slice(1), `${FIXTURES}/server.ts`, "--", String(port)], {
        env: { ...process.env, NOTIFY_SOCKET: socket },
        stdio: "ignore",
      });
      const pid = sb.track(child.pid);
      assert.ok(await eventually(() => readOr(received).includes("READY=1"), 10_000), "no READY=1");
      assert.match(readOr(received), new RegExp(`^READY=1\\nMAINPID=${pid}`));
      assert.match(await get(port), /Hello from PID/, "READY=1 came before the port accepted");
      process.kill(pid, "SIGHUP");
      assert.ok(await eventually(() => /RELOADING=1READY=1/.test(readOr(received))), readOr(received));
      process.kill(pid, "SIGTERM");
      assert.ok(await eventually(() => readOr(received).endsWith("STOPPING=1")), readOr(received));
      assert.ok(waitGone(pid, 5000));
    }),
  );
});

describe(`the foreground with workers and a log file (${RUNTIME})`, () => {
  test(
    "--workers 2 --log-file in the foreground: this process is the master (MAINPID), workers under it share the port, output in the log, --status lists them, TERM ends all",
    sandboxed(async (sb) => {
      const { socket, received } = await notifyReceiver(sb);
      const port = await freePort();
      const pidFile = sb.path("fg.pid"), logFile = sb.path("fg.log");
      const argv = RUNTIME === "bun" ? [BUN, CLI, "run"] : [DENO, "run", "-A", "--unstable-net", CLI, "run"];
      const runner = [
        ...argv,
        `${FIXTURES}/app.ts`,
        "--name",
        "fg",
        "--workers",
        "2",
        "--pid-file",
        pidFile,
        "--log-file",
        logFile,
      ];
      const child = spawn(runner[0], [...runner.slice(1), "--", String(port)], {
        env: { ...process.env, NOTIFY_SOCKET: socket },
        stdio: "ignore",
      });
      const master = sb.track(child.pid);
      assert.ok(
        await eventually(() => readOr(received).includes("READY=1"), 15_000),
        `no READY=1; log: ${readOr(logFile)}`,
      );
      assert.match(readOr(received), new RegExp(`^READY=1\\nMAINPID=${master}`));
      const workers = childrenOf(master).map((pid) => sb.track(pid));
      assert.equal(workers.length, 2, `children of the master: ${workers}`);
      const answered = new Set<number>();
      for (let i = 0; i < 20; i++) answered.add(Number(/Hello from PID (\d+)/.exec(await get(port))![1]));
      for (const pid of answered) assert.ok(workers.includes(pid), `${pid} answered, not a worker`);
      assert.ok(
        await eventually(() => /listening on/.test(readOr(logFile))),
        "the workers' output is not in --log-file",
      );
      assert.match(readOr(logFile), /master: 2 workers ready/);
      const status = spawnSync(argv[0], [...argv.slice(1), `${FIXTURES}/app.ts`, "--status", "--pid-file", pidFile], {
        encoding: "utf8",
      });
      assert.equal(status.status, 0, status.stderr);
      assert.equal(status.stdout.match(/worker\[\d\] pid \d+/g)?.length, 2, status.stdout);
      process.kill(master, "SIGTERM");
      for (const pid of [master, ...workers]) assert.ok(waitGone(pid, 8000), `${pid} left running`);
      assert.ok(!existsSync(pidFile), "the pid file stayed");
    }),
  );
});
