/**
 * A foreground run (a container's, a service's) seen by `--status` without a pid file: 3 until it is ready,
 * 0 while it serves, 3 once a stop began; and a stop whose shutdown hook hangs ends at --timeout.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { describe, test } from "node:test";
import { alive, eventually, FIXTURES, run, runTarget, RUNTIME, sandboxed, waitGone } from "./_helpers.ts";

/** A foreground run of `fixture` named `name`, its output collected; tracked for cleanup. */
function foreground(sb: { track(pid?: number): number }, fixture: string, args: string[]) {
  const argv = runTarget.argv(`${FIXTURES}/${fixture}`, args);
  const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  sb.track(child.pid);
  let output = "";
  child.stdout!.on("data", (d) => output += d);
  child.stderr!.on("data", (d) => output += d);
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return { child, output: () => output, exited };
}

describe(`a foreground run's probe and stop (${RUNTIME})`, () => {
  test(
    "--status without --pid-file: 3 before it is ready, 0 while it serves (the pid that answers), 3 once it stopped",
    sandboxed(async (sb) => {
      const name = `probe_${process.pid}`;
      const status = () => run(runTarget.argv(`${FIXTURES}/gate.ts`, ["--status", "--name", name]));
      const fg = foreground(sb, "gate.ts", ["--name", name, "--ready", "manual", "--", sb.path("gate")]);
      assert.ok(await eventually(() => fg.output().includes("waiting for the gate"), 30_000), fg.output());
      let r = status();
      assert.equal(r.status, 3, `before it is ready: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`${name}: not running`));
      writeFileSync(sb.path("gate"), "");
      assert.ok(await eventually(() => (r = status()).status === 0, 30_000), r.stdout + r.stderr);
      const pid = Number(/running \(pid (\d+)\) in the foreground, ready/.exec(r.stdout)?.[1]);
      assert.ok(pid > 0, r.stdout);
      sb.track(pid);
      let port = 0;
      assert.ok(
        await eventually(() => (port = Number(/listening on (\d+)/.exec(fg.output())?.[1] ?? 0)) > 0),
        fg.output(),
      );
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), `Hello from PID ${pid}\n`);
      process.kill(pid, "SIGTERM");
      assert.equal(await fg.exited, 0, fg.output());
      assert.equal(status().status, 3);
    }),
  );

  test(
    "during a stop --status says 3 while the process still runs its hook; a hook that never finishes ends at --timeout (exit 1, said)",
    sandboxed(async (sb) => {
      const name = `slow_${process.pid}`;
      const status = () => run(runTarget.argv(`${FIXTURES}/slow-shutdown.ts`, ["--status", "--name", name]));
      const fg = foreground(sb, "slow-shutdown.ts", ["--name", name, "--timeout", "3", "--", "0"]);
      let r = status();
      assert.ok(await eventually(() => (r = status()).status === 0, 30_000), r.stdout + r.stderr + fg.output());
      const pid = sb.track(Number(/pid (\d+)/.exec(r.stdout)?.[1]));
      assert.ok(pid > 0, r.stdout);
      process.kill(pid, "SIGTERM");
      assert.ok(await eventually(() => fg.output().includes("shutdown hook started"), 10_000), fg.output());
      r = status();
      assert.equal(r.status, 3, r.stdout);
      assert.ok(alive(pid), "still stopping");
      assert.equal(await fg.exited, 1, fg.output());
      assert.ok(waitGone(pid, 5000));
      assert.match(fg.output(), /shutdown not finished after --timeout 3 s: exiting/);
    }),
  );
});
