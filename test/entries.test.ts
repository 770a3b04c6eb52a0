/**
 * Entries as they come: a default export with fetch is served with its own options, an entry that is no
 * server fails in every mode with the three ways to be one, and runner flags after -- draw a warning.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { after, describe, test } from "node:test";
import {
  alive,
  childrenOf,
  eventually,
  exchange,
  fileSandbox,
  FIXTURES,
  freePort,
  readOr,
  run,
  RUNTIME,
  sandboxed,
  targetFor,
} from "./_helpers.ts";

const buildDir = fileSandbox();
const target = await targetFor(["idle.ts", "argv.ts", "fetch-options.ts"], buildDir.dir);
const runner = (entry: string, args: string[], env: Record<string, string> = {}) =>
  run(target.argv(`${FIXTURES}/${entry}`, args), { env: { ...process.env, ...env } });
const THREE_WAYS =
  /^Cannot start: .*nothing left to run.*: listen on a port, export default \{ fetch \}, or call ready\(\) and keep running$/;

describe(`entries that are no server (${target.name})`, () => {
  for (const mode of [[], ["--daemon"], ["--daemon", "--workers", "2"]]) {
    test(
      `${mode.join(" ") || "foreground"}: exit 69, one line naming the three ways to serve, nothing left behind`,
      sandboxed(async (sb) => {
        const pidFile = sb.path("idle.pid"), logFile = sb.path("idle.log");
        const r = runner("idle.ts", [...mode, "--pid-file", pidFile, "--log-file", logFile]);
        assert.equal(r.status, 69, r.stderr);
        const lines = r.stderr.trim().split("\n");
        assert.equal(lines.length, 1, r.stderr);
        assert.match(lines[0].replace("the entry failed during start-up: ", ""), THREE_WAYS);
        if (mode.length) {
          assert.match(readOr(logFile), /FATAL daemonic\[\d+\]: .*listen on a port, export default \{ fetch \}/);
        }
        assert.deepEqual(
          readdirSync(sb.dir).filter((f) => f !== "idle.log"),
          [],
        ); // no pid file, .log-path, .workers
        assert.ok(await eventually(() => sb.tagged().length === 0, 2000), `a process was left behind: ${sb.tagged()}`);
      }),
    );
  }

  test(
    "a failed start leaves an earlier PIDFILE.log-path as it found it",
    sandboxed((sb) => {
      const pidFile = sb.path("idle.pid");
      writeFileSync(`${pidFile}.log-path`, "/var/log/earlier.log\n");
      const r = runner("idle.ts", ["--daemon", "--pid-file", pidFile, "--log-file", sb.path("new.log")]);
      assert.equal(r.status, 69, r.stderr);
      assert.equal(readOr(`${pidFile}.log-path`), "/var/log/earlier.log\n");
      assert.ok(!existsSync(pidFile));
    }),
  );
});

describe(`a default export with fetch (${target.name})`, () => {
  test(
    "a class instance is served with its own options and fetch bound to it; the port: the export's on Bun, PORT on Deno",
    sandboxed(async (sb) => {
      const [exportPort, envPort] = [await freePort(), await freePort()];
      const pidFile = sb.path("o.pid"), logFile = sb.path("o.log");
      const r = runner("fetch-options.ts", ["--daemon", "--pid-file", pidFile, "--log-file", logFile], {
        APP_PORT: String(exportPort),
        PORT: String(envPort),
      });
      const pid = sb.track(Number(r.stdout.trim()));
      assert.equal(r.status, 0, `${r.stderr}\n${readOr(logFile)}`);
      const port = RUNTIME === "bun" ? exportPort : envPort;
      // Served by the daemon: under keep-alive, by the entry's process, its child.
      const answering = Number(/Hello from the export, PID (\d+)/.exec(await exchange(port))?.[1]);
      assert.ok(
        answering === pid || childrenOf(pid).includes(answering),
        `answered by pid ${answering}, not daemon ${pid} or its child`,
      );
      await assert.rejects(exchange(RUNTIME === "bun" ? envPort : exportPort), "served on the other port too");
      assert.equal(runner("fetch-options.ts", ["--stop", "--pid-file", pidFile]).status, 0);
      assert.ok(await eventually(() => !alive(pid)));
    }),
  );
});

describe(`runner flags after -- (${target.name})`, () => {
  test("go to the entry, with a one-line warning naming the flag; an entry's own flag draws none", () => {
    const misplaced = runner("argv.ts", ["--", "--port", "3102", "--daemon"]);
    assert.equal(misplaced.status, 0, misplaced.stderr);
    assert.equal(misplaced.stdout, `["--port","3102","--daemon"]\n`);
    assert.equal(
      misplaced.stderr,
      "warning: --daemon after -- goes to the entry, not to the runner: put runner flags before --\n",
    );
    const own = runner("argv.ts", ["--", "--port", "3102"]);
    assert.equal(own.status, 0, own.stderr);
    assert.equal(own.stdout, `["--port","3102"]\n`);
    assert.equal(own.stderr, "");
  });
});
