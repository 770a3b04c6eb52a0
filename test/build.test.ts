/** `daemonic build` and `daemonic run` as a user calls them, and the library's `daemonize()`. */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  BUN,
  childrenOf,
  CLI,
  DENO,
  exchange,
  FIXTURES,
  portFromLog,
  readOr,
  ROOT,
  run,
  RUNTIME,
  Sandbox,
  sandboxed,
  waitGone,
} from "./_helpers.ts";
import { userProject } from "./_project.ts";

const cliArgv = (args: string[]) => RUNTIME === "bun" ? [BUN, CLI, ...args] : [DENO, "run", "-A", CLI, ...args];
const cli = (args: string[]) => run(cliArgv(args), { timeout: 120_000 });

describe(`daemonic build (${RUNTIME})`, () => {
  test(
    "builds one executable that runs the entry in the foreground and as a daemon",
    sandboxed(async (sb) => {
      const out = sb.path("mydaemon");
      const r = cli(["build", `${FIXTURES}/plain.ts`, "-o", out]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(statSync(out).mode & 0o100, "executable");
      const help = run([out, "--help"]);
      assert.equal(help.status, 0);
      assert.match(help.stdout, /^Usage: mydaemon /);
      const version = run([out, "--version"]);
      assert.match(version.stdout, /^mydaemon \(daemonic \d+\.\d+\.\d+\)/);
      const pidFile = sb.path("my.pid"), logFile = sb.path("my.log");
      const started = run([out, "--daemon", "--pid-file", pidFile, "--log-file", logFile, "--", "0"]);
      const pid = sb.track(Number(started.stdout));
      assert.equal(started.status, 0, started.stderr);
      // Keep-alive: the daemon supervises the entry, which runs in its one child.
      const [entry] = childrenOf(pid).map((child) => sb.track(child));
      assert.equal(await exchange(await portFromLog(logFile)), `Hello from PID ${entry}\n`);
      assert.equal(run([out, "--stop", "--pid-file", pidFile]).status, 0);
      assert.ok(waitGone(pid, 5000) && waitGone(entry, 5000));
    }),
  );

  test(
    "a missing entry exits 66, a bad flag 64, an entry that does not compile 65, each in one line",
    sandboxed(async (sb) => {
      const missing = cli(["build", sb.path("nope.ts"), "-o", sb.path("x")]);
      assert.equal(missing.status, 66, missing.stderr);
      assert.match(missing.stderr, /Cannot find entry .*nope\.ts: check the path/);
      const flag = cli(["build", `${FIXTURES}/plain.ts`]);
      assert.equal(flag.status, 64, flag.stderr);
      assert.match(flag.stderr, /Missing -o OUTPUT/);
      const runtime = cli(["build", `${FIXTURES}/plain.ts`, "-o", sb.path("x"), "--runtime", "node"]);
      assert.equal(runtime.status, 64);
      assert.match(runtime.stderr, /Invalid --runtime 'node': use bun or deno/);
      writeFileSync(sb.path("broken.ts"), `import "./does-not-exist.ts";\n`);
      const broken = cli(["build", sb.path("broken.ts"), "-o", sb.path("x")]);
      assert.equal(broken.status, 65, broken.stderr);
      assert.match(broken.stderr, /Cannot build .*does-not-exist/);
      assert.equal(broken.stderr.trim().split("\n").length, 1, broken.stderr);
      assert.ok(!existsSync(sb.path("x")));
    }),
  );

  test(
    "two builds of one entry in two temp directories, under different names, are the same bytes, and leave no source map beside them",
    sandboxed((sb) => {
      const other = new Sandbox(); // another random name: the minifier once named things after the path's letters
      try {
        const built = [sb.dir, other.dir].map((dir, i) => {
          writeFileSync(
            join(dir, "server.ts"),
            `import { createServer } from "node:http";\ncreateServer((_q, s) => s.end("hi")).listen(0);\n`,
          );
          const r = cli(["build", join(dir, "server.ts"), "-o", join(dir, `daemon-${i}`)]);
          assert.equal(r.status, 0, r.stderr);
          assert.deepEqual(readdirSync(dir).sort(), [`daemon-${i}`, "server.ts"]);
          return readFileSync(join(dir, `daemon-${i}`));
        });
        assert.equal(built[0].length, built[1].length);
        assert.ok(built[0].equals(built[1]), "the two executables differ");
      } finally {
        other.cleanup();
      }
    }),
  );

  // deno compile downloads denort from a host this machine cannot reach: without DENORT_BIN, nothing to build with.
  const noDenort = process.env.DENORT_BIN ? false : "DENORT_BIN is not set: deno compile cannot fetch denort here";
  if (noDenort) console.error(`test/build.test.ts: SKIPPING the deno compile build: ${noDenort}`);
  test("--runtime deno builds with deno compile when a denort is at hand (DENORT_BIN)", { skip: noDenort }, () => {
    const sb = new Sandbox();
    try {
      const out = sb.path("mydaemon-deno");
      const r = cli(["build", `${FIXTURES}/plain.ts`, "-o", out, "--runtime", "deno"]);
      assert.equal(r.status, 0, r.stderr);
      const pidFile = sb.path("d.pid");
      const started = run([out, "--daemon", "--pid-file", pidFile, "--", "0"]);
      const pid = sb.track(Number(started.stdout));
      assert.equal(started.status, 0, started.stderr);
      assert.equal(run([out, "--stop", "--pid-file", pidFile]).status, 0);
      assert.ok(waitGone(pid, 5000));
      // Workers share a port (reusePort): the binary carries --unstable-net, its workers need no flag.
      const workers = run([
        out,
        "--daemon",
        "--workers",
        "2",
        "--pid-file",
        pidFile,
        "--log-file",
        sb.path("w.log"),
        "--",
        "0",
      ]);
      const master = sb.track(Number(workers.stdout));
      assert.equal(workers.status, 0, `${workers.stderr}${readOr(sb.path("w.log"))}`);
      const children = childrenOf(master).map((p) => sb.track(p));
      assert.equal(children.length, 2);
      assert.equal(run([out, "--stop", "--pid-file", pidFile]).status, 0);
      for (const p of [master, ...children]) assert.ok(waitGone(p, 5000));
    } finally {
      sb.cleanup();
    }
  });

  test(
    "without DENORT_BIN and no network, --runtime deno fails in one line that names DENORT_BIN",
    { skip: !!process.env.DENORT_BIN },
    sandboxed(async (sb) => {
      const r = cli(["build", `${FIXTURES}/plain.ts`, "-o", sb.path("x"), "--runtime", "deno"]);
      assert.equal(r.status, 65, r.stderr);
      assert.match(
        r.stderr,
        /^Cannot build \S+: deno compile could not download its denort runtime \(.*\): set DENORT_BIN to a denort binary of this Deno's version \(fetch it where the network allows: https:\/\/dl\.deno\.land\/\S+\.zip\)\n$/,
      );
      assert.ok(!existsSync(sb.path("x")));
    }),
  );

  test(
    "--runtime deno: a DENORT_BIN that is no denort is named, with why",
    sandboxed(async (sb) => {
      writeFileSync(sb.path("not-denort"), "#!/bin/sh\n", { mode: 0o755 });
      const r = run(cliArgv(["build", `${FIXTURES}/plain.ts`, "-o", sb.path("x"), "--runtime", "deno"]), {
        env: { ...process.env, DENORT_BIN: sb.path("not-denort") },
        timeout: 120_000,
      });
      assert.equal(r.status, 65, r.stderr);
      assert.equal(
        r.stderr,
        `Cannot build ${sb.path("x")}: DENORT_BIN=${
          sb.path("not-denort")
        } is not a usable denort (Writing binary bytes: Invalid object: Not an ELF file): set DENORT_BIN to a denort binary of this Deno's version\n`,
      );
      assert.ok(!existsSync(sb.path("x")));
    }),
  );

  test(
    "--runtime deno: an entry that does not compile is named with its own error, file and line",
    sandboxed(async (sb) => {
      writeFileSync(sb.path("lib.ts"), "export const port = 8000;\nexport const broken = ;\n");
      writeFileSync(
        sb.path("app.ts"),
        `import { port } from "./lib.ts";\nDeno.serve({ port }, () => new Response("hi"));\n`,
      );
      const r = cli(["build", sb.path("app.ts"), "-o", sb.path("x"), "--runtime", "deno"]);
      assert.equal(r.status, 65, r.stderr);
      assert.equal(
        r.stderr,
        `Cannot build ${sb.path("x")}: ${sb.path("app.ts")} does not compile: SyntaxError: Expression expected at ${
          sb.path("lib.ts")
        }:2:23\n`,
      );
      writeFileSync(sb.path("app.ts"), `import "./gone.ts";\n`);
      const missing = cli(["build", sb.path("app.ts"), "-o", sb.path("x"), "--runtime", "deno"]);
      assert.equal(
        missing.stderr,
        `Cannot build ${sb.path("x")}: ${sb.path("app.ts")} does not compile: Module not found "${
          sb.path("gone.ts")
        }" at ${sb.path("app.ts")}:1:8\n`,
      );
      assert.ok(!existsSync(sb.path("x")));
    }),
  );

  test(
    "--runtime deno without deno installed (npx daemonic build in a project without it): how to get it",
    sandboxed(async (sb) => {
      const { dir } = userProject(); // the packed package installed: bun comes with it, deno does not
      const r = run([
        "npx",
        "--no-install",
        "daemonic",
        "build",
        `${FIXTURES}/plain.ts`,
        "-o",
        sb.path("x"),
        "--runtime",
        "deno",
      ], { cwd: dir, env: { HOME: process.env.HOME, PATH: "/usr/bin:/bin" }, timeout: 120_000 });
      assert.equal(r.status, 65, r.stderr);
      assert.match(
        r.stderr,
        /^Cannot build \S+: deno is not installed \(no deno on PATH\): add it to your project with npm i -D deno \(or install Deno\), then build again\n$/,
      );
      assert.ok(!existsSync(sb.path("x")));
    }),
  );
});

describe(`daemonic run and the library (${RUNTIME})`, () => {
  test("daemonic run: a missing entry exits 66, an unknown command 64", () => {
    const missing = cli(["run", "/nonexistent/entry.ts"]);
    assert.equal(missing.status, 66);
    assert.match(missing.stderr, /Cannot find entry/);
    const unknown = cli(["frobnicate"]);
    assert.equal(unknown.status, 64);
    assert.match(unknown.stderr, /Unknown command 'frobnicate'/);
  });

  test(
    "daemonize() in a script detaches it, writes the pid file and returns in the daemon",
    sandboxed(async (sb) => {
      const pidFile = sb.path("lib.pid"), logFile = sb.path("lib.log");
      const argv = RUNTIME === "bun"
        ? [BUN, `${FIXTURES}/self-daemonize.ts`]
        : [DENO, "run", "-A", `${FIXTURES}/self-daemonize.ts`];
      const r = run([...argv, pidFile, logFile], { cwd: ROOT });
      const pid = sb.track(Number(r.stdout));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readOr(pidFile), `${pid}\n`);
      assert.equal(await exchange(await portFromLog(logFile)), `daemonized ${pid}\n`);
      process.kill(pid, "SIGTERM");
      assert.ok(waitGone(pid, 5000));
      assert.ok(!existsSync(pidFile));
    }),
  );
});
