/**
 * `--metrics ADDR`: the exposition text (promtool accepts it), served by keep-alive's supervisor and by a
 * master, never by the entry: restarts and the last exit of a crashing entry, readiness, /ready and /live;
 * and what is refused (no supervisor to serve it, a bad address, a port in use).
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import { exposition } from "../src/master/metrics.ts";
import { eventually, FIXTURES, readOr, run, runTarget, RUNTIME, sandboxed } from "./_helpers.ts";
import { IS_ROOT, setup } from "./_roots.ts";

if (IS_ROOT) setup("containers"); // promtool, from Debian's prometheus
const promtool = (text: string) => run(["promtool", "check", "metrics"], { input: text });

describe("exposition()", () => {
  test("per slot restarts and last exit (128 + signal), readiness, per process RSS and CPU; promtool accepts it", {
    skip: IS_ROOT ? false : "promtool is installed as root",
  }, () => {
    const text = exposition("app", {
      starting: false,
      workers: [{ id: 1, pid: process.pid, startedAt: Date.now() - 5000, ready: true }, {
        id: 2,
        pid: process.pid,
        startedAt: Date.now(),
        ready: false,
      }],
      restarts: new Map([[1, 3]]),
      lastExits: new Map([[1, 9], [2, 2 << 8]]),
    }, Date.now() - 60_000);
    assert.match(text, /^daemonic_worker_restarts_total\{name="app",worker="1"\} 3$/m);
    assert.match(text, /^daemonic_worker_restarts_total\{name="app",worker="2"\} 0$/m);
    assert.match(text, /^daemonic_worker_last_exit_code\{name="app",worker="1"\} 137$/m);
    assert.match(text, /^daemonic_worker_last_exit_code\{name="app",worker="2"\} 2$/m);
    assert.match(text, /^daemonic_worker_ready\{name="app",worker="2"\} 0$/m);
    assert.match(text, /^daemonic_worker_uptime_seconds\{name="app",worker="1"\} [4-9](\.\d+)?$/m);
    assert.match(text, /^daemonic_process_resident_memory_bytes\{name="app",process="master",worker=""\} [1-9]\d*$/m);
    assert.match(text, /^daemonic_info\{name="app",version="[\d.]+",runtime="(bun|deno)"\} 1$/m);
    const r = promtool(text);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});

describe(`--metrics on a running daemon (${RUNTIME})`, () => {
  test(
    "keep-alive's supervisor serves it: the crashing entry's restarts and last exit code; /live; --stop ends it",
    sandboxed(async (sb) => {
      const args = [
        "--daemon",
        "--pid-file",
        sb.path("app.pid"),
        "--log-file",
        sb.path("app.log"),
        "--metrics",
        "127.0.0.1:0",
      ];
      const started = run(runTarget.argv(`${FIXTURES}/crashes.ts`, [...args, "--", "0", "300"]), { timeout: 60_000 });
      assert.equal(started.status, 0, started.stderr);
      sb.track(Number(started.stdout.trim()));
      try {
        let url = "";
        assert.ok(
          await eventually(
            () => (url = /metrics on (http:\/\/\S+)/.exec(readOr(sb.path("app.log")))?.[1] ?? "") !== "",
            10_000,
          ),
          readOr(sb.path("app.log")),
        );
        let text = "";
        const restarted = async () =>
          /^daemonic_worker_restarts_total\{name="crashes",worker="1"\} [1-9]/m.test(
            text = await (await fetch(url)).text(),
          );
        const end = Date.now() + 20_000;
        while (!(await restarted()) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
        assert.match(text, /^daemonic_worker_restarts_total\{name="crashes",worker="1"\} [1-9]\d*$/m);
        assert.match(text, /^daemonic_worker_last_exit_code\{name="crashes",worker="1"\} 1$/m);
        assert.match(text, /^daemonic_ready\{name="crashes"\} 1$/m);
        assert.match(
          text,
          new RegExp(
            `^daemonic_process_cpu_seconds_total\\{name="crashes",process="master",worker=""\\} [\\d.]+$`,
            "m",
          ),
        );
        assert.equal((await fetch(url.replace(/metrics$/, "live"))).status, 200);
        assert.equal((await fetch(url.replace(/metrics$/, "nothing"))).status, 404);
      } finally {
        const stop = run(runTarget.argv(`${FIXTURES}/crashes.ts`, ["--stop", "--pid-file", sb.path("app.pid")]), {
          timeout: 60_000,
        });
        assert.equal(stop.status, 0, stop.stderr);
      }
    }),
  );

  test(
    "refused: without a supervisor (foreground without --workers, --no-keep-alive), a bad address; a port in use fails the start (69)",
    sandboxed(async (sb) => {
      for (
        const [args, message] of [
          [["--metrics", "9464"], /Invalid --metrics without --workers in the foreground/],
          [
            ["--daemon", "--no-keep-alive", "--pid-file", sb.path("a.pid"), "--metrics", "9464"],
            /Invalid --metrics with --no-keep-alive/,
          ],
          [
            ["--daemon", "--workers", "1", "--pid-file", sb.path("a.pid"), "--metrics", "host:port"],
            /Invalid --metrics 'host:port': give PORT, HOST:PORT or \[IPv6\]:PORT/,
          ],
        ] as const
      ) {
        const r = run(runTarget.argv(`${FIXTURES}/server.ts`, [...args, "--", "0"]), { timeout: 60_000 });
        assert.equal(r.status, 64, r.stderr);
        assert.match(r.stderr, message);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      }
      const busy = createServer();
      await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
      try {
        const port = (busy.address() as { port: number }).port;
        const r = run(
          runTarget.argv(`${FIXTURES}/server.ts`, [
            "--daemon",
            "--workers",
            "1",
            "--pid-file",
            sb.path("b.pid"),
            "--metrics",
            `127.0.0.1:${port}`,
            "--",
            "0",
          ]),
          { timeout: 60_000 },
        );
        assert.equal(r.status, 69, r.stderr);
        assert.match(r.stderr, new RegExp(`Cannot start: --metrics 127\\.0\\.0\\.1:${port}: .*: pick a free port`));
        assert.equal(readOr(sb.path("b.pid")), "", "no pid file left");
      } finally {
        busy.close();
      }
    }),
  );
});
