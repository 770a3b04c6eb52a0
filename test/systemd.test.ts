/** sd_notify: under systemd's Type=notify the entry runs in the foreground and systemd hears its states. */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { BUN, CLI, DENO, eventually, FIXTURES, freePort, get, readOr, RUNTIME, Sandbox, sandboxed, waitGone } from "./_helpers.ts";

describe(`systemd notify (${RUNTIME})`, () => {
  test("Type=notify: READY=1 with MAINPID once the port accepts, RELOADING=1/READY=1 on HUP, STOPPING=1 on TERM", sandboxed(async (sb) => {
    const socket = sb.path("notify.sock"), received = sb.path("received");
    // socat stands in for systemd: it appends every datagram it receives to a file.
    const receiver = spawn("socat", ["-u", `UNIX-RECV:${socket}`, `OPEN:${received},creat,append`], { stdio: "ignore" });
    sb.track(receiver.pid);
    assert.ok(await eventually(() => spawnSync("test", ["-S", socket]).status === 0), "socat did not bind");
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
  }));
});
