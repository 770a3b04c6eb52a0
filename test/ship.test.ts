/**
 * Ships to the servers people have: a binary built here runs on a Debian 11 root (glibc 2.31), an arm64
 * binary from --target runs under qemu, and the npm package installs and runs as a user would use it.
 * The roots are made once by scripts/test-roots.sh and cached in /var/cache/daemonic-test. Everything here
 * builds with Bun and runs the binary (or both runtimes' user commands) whatever runtime runs this file, so
 * `npm test` runs it once, in the bun pass (scripts/test.sh).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  alive,
  BUN,
  childrenOf,
  CLI,
  DENO,
  eventually,
  fileSandbox,
  FIXTURES,
  freePort,
  get,
  portFromLog,
  procStat,
  readOr,
  ROOT,
  run,
  RUNTIME,
  sandboxed,
  waitGone,
} from "./_helpers.ts";
import { buildBinary, CACHE, debianNamespace, IS_ROOT, setup, skipUnlessRoot } from "./_roots.ts";

if (!IS_ROOT) console.log(`ship.test.ts: SKIPPING the Debian 11 root and qemu tests: ${skipUnlessRoot}`);
// Made at load time: a first debootstrap takes about a minute, longer than a test's timeout.
if (IS_ROOT) setup("bullseye", "arm64");
const buildDir = fileSandbox();

describe(`runs on Debian 11, glibc 2.31 (${RUNTIME})`, { skip: skipUnlessRoot }, () => {
  test(
    "a binary built here: --daemon answers, --status, --reload, --stop; --workers 2 with a rolling reload",
    sandboxed(async (sb) => {
      const root = join(CACHE, "bullseye");
      const ldd = spawnSync("chroot", [root, "ldd", "--version"], { encoding: "utf8" });
      assert.match(ldd.stdout, /GLIBC 2\.31/);
      const dir = mkdtempSync(join(root, "tmp", "daemonic-"));
      try {
        const inside = dir.slice(root.length);
        copyFileSync(buildBinary("server.ts", join(buildDir.dir, "server")), join(dir, "server"));
        spawnSync("chmod", ["755", join(dir, "server")]);
        const { daemons, exec } = await debianNamespace(sb, root);
        const app = (args: string[]) =>
          exec([`${inside}/server`, "--pid-file", `${inside}/d.pid`, "--log-file", `${inside}/d.log`, ...args]);

        let r = app(["--daemon", "--", "0"]);
        assert.equal(r.status, 0, r.stderr);
        const [master] = daemons(); // reparented to the namespace's init
        assert.ok(master, "no daemon under the namespace's init");
        assert.equal(procStat(master).session !== master, true, "the daemon leads its session");
        const port = await portFromLog(join(dir, "d.log"));
        assert.match(await get(port), /^Hello from PID \d+/);
        assert.match(app(["--status"]).stdout, /running/);
        assert.equal(app(["--reload"]).status, 0); // keep-alive: the entry's process replaced, successor first
        assert.match(readOr(join(dir, "d.log")), /master: reloaded: the entry's process/);
        r = app(["--stop"]);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(waitGone(master, 5000));
        assert.equal(app(["--status"]).status, 3);

        writeFileSync(join(dir, "d.log"), "");
        const port2 = await freePort(); // the workers share it
        r = app(["--daemon", "--workers", "2", "--", String(port2)]);
        assert.equal(r.status, 0, r.stderr);
        const [master2] = daemons();
        const workers = childrenOf(master2).map((p) => sb.track(p));
        assert.equal(workers.length, 2);
        assert.match(await get(port2), /^Hello/);
        assert.equal(app(["--reload"]).status, 0);
        assert.ok(
          await eventually(() => /rolling restart done/.test(readOr(join(dir, "d.log"))), 15_000),
          readOr(join(dir, "d.log")),
        );
        const replaced = childrenOf(master2).map((p) => sb.track(p));
        assert.equal(replaced.length, 2);
        for (const pid of workers) assert.ok(!replaced.includes(pid) && !alive(pid), `old worker ${pid} left`);
        assert.match(await get(port2), /^Hello/);
        assert.equal(app(["--stop"]).status, 0);
        for (const pid of [master2, ...replaced]) assert.ok(waitGone(pid, 5000), `${pid} left behind`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
  );
});

describe(`an arm64 binary from --target linux-arm64, under Debian's qemu-user-static (${RUNTIME})`, {
  skip: skipUnlessRoot,
}, () => {
  test(
    "its ELF header says aarch64; it runs in the foreground and as --daemon (binfmt_misc), answers, stops",
    sandboxed(async (sb) => {
      const binary = buildBinary("server.ts", sb.path("server-arm64"), ["--target", "linux-arm64"]);
      const elf = readFileSync(binary).subarray(0, 20);
      assert.equal(elf.subarray(1, 4).toString(), "ELF");
      assert.equal(elf.readUInt16LE(18), 183); // e_machine EM_AARCH64
      const registry = "/proc/sys/fs/binfmt_misc/qemu-aarch64";
      const registered = existsSync(registry), mounted = existsSync("/proc/sys/fs/binfmt_misc/register");
      setup("binfmt"); // --daemon re-executes the binary: only binfmt_misc makes the kernel hand that to qemu
      try {
        const pidFile = sb.path("d.pid"), logFile = sb.path("d.log");
        const out = openSync(logFile, "w"); // in the foreground the output goes to stdout
        const fg = spawn(binary, ["--", "0"], { stdio: ["ignore", out, out] });
        closeSync(out);
        sb.track(fg.pid);
        assert.equal(
          readFileSync(`/proc/${fg.pid}/exe`).subarray(18, 20).readUInt16LE(0),
          62,
          "not run by an x86-64 qemu",
        ); // EM_X86_64
        // Under qemu the runtime starts in seconds, more beside other work: a minute, not the usual 5 s.
        assert.match(await get(await portFromLog(logFile, 60_000)), /^Hello from PID \d+/);
        fg.kill("SIGTERM");
        assert.ok(waitGone(fg.pid!, 10_000));
        writeFileSync(logFile, "");
        const r = run([binary, "--pid-file", pidFile, "--log-file", logFile, "--daemon", "--", "0"], {
          timeout: 60_000,
        });
        assert.equal(r.status, 0, r.stderr);
        const pid = sb.track(Number(r.stdout.trim()));
        assert.ok(procStat(pid).session !== pid && procStat(pid).ppid === 1, "not detached");
        assert.match(await get(await portFromLog(logFile, 60_000)), /^Hello/);
        assert.match(run([binary, "--pid-file", pidFile, "--status"]).stdout, /running/);
        assert.equal(run([binary, "--pid-file", pidFile, "--stop"], { timeout: 60_000 }).status, 0);
        assert.ok(waitGone(pid, 5000));
      } finally {
        if (!registered) writeFileSync(registry, "-1"); // leave binfmt_misc as it was
        if (!mounted) run(["umount", "/proc/sys/fs/binfmt_misc"]);
      }
    }),
  );
});

describe(`daemonic build --target, bad input (${RUNTIME})`, () => {
  test(
    "an unknown target or --runtime deno: one line naming the choices, exit 64, no file written",
    sandboxed((sb) => {
      const out = sb.path("never");
      const bad = run([BUN, CLI, "build", join(FIXTURES, "server.ts"), "-o", out, "--target", "windows-x64"]);
      assert.equal(bad.status, 64, bad.stderr);
      assert.equal(
        bad.stderr,
        "Invalid --target 'windows-x64': use one of linux-x64, linux-x64-baseline, linux-arm64, linux-x64-musl, linux-arm64-musl\n",
      );
      const deno = run([
        BUN,
        CLI,
        "build",
        join(FIXTURES, "server.ts"),
        "-o",
        out,
        "--target",
        "linux-arm64",
        "--runtime",
        "deno",
      ]);
      assert.equal(deno.status, 64, deno.stderr);
      assert.equal(deno.stderr.trim().split("\n").length, 1, deno.stderr);
      assert.ok(!existsSync(out));
    }),
  );

  test(
    "a runtime npm cannot fetch: exit 65, the error in one line after the progress line, nothing left in the cache",
    sandboxed((sb) => {
      const out = sb.path("never"), cache = sb.path("cache");
      const env = {
        ...process.env,
        DAEMONIC_CACHE: cache,
        npm_config_registry: "http://127.0.0.1:9/",
        npm_config_fetch_retries: "0",
      };
      const r = run([BUN, CLI, "build", join(FIXTURES, "server.ts"), "-o", out, "--target", "linux-x64-baseline"], {
        env,
      });
      assert.equal(r.status, 65, r.stderr);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 2, r.stderr);
      assert.match(lines[0], /^daemonic: fetching @oven\/bun-linux-x64-baseline@\d+\.\d+\.\d+ .* once$/);
      assert.match(
        lines[1],
        /^Cannot fetch @oven\/bun-linux-x64-baseline@[\d.]+ from npm \(.*ECONNREFUSED.*\): check the network and npm's registry setting$/,
      );
      assert.ok(!existsSync(out));
      assert.deepEqual(readdirSync(cache), []);
    }),
  );
});

describe(`as a user installs it: npm pack, npm i, npx daemonic build; a Deno entry imports it (${RUNTIME})`, () => {
  test(
    "the tarball holds only dist/, README, LICENSE; the built binary serves hono as a daemon; deno runs npm:daemonic",
    sandboxed(async (sb) => {
      const pack = run(["npm", "pack", "--silent", "--pack-destination", sb.dir], { cwd: ROOT, timeout: 120_000 });
      assert.equal(pack.status, 0, pack.stderr);
      const tarball = join(sb.dir, pack.stdout.trim().split("\n").pop()!);
      const listed = run(["tar", "-tzf", tarball]).stdout.trim().split("\n").sort();
      // tsc's files, and the command's chunks (scripts/build-npm.sh bundles dist/src/cli.js into dist/src/bin/)
      const ours =
        /^package\/dist\/(mod|src\/(\w+\/)?\w+|ffi\/\w+)\.(js|d\.ts)$|^package\/dist\/src\/bin\/\w+-\w+\.js$/;
      assert.deepEqual(listed.filter((f) => !ours.test(f)), [
        "package/LICENSE",
        "package/README.md",
        "package/package.json",
      ]);
      assert.ok(listed.includes("package/dist/src/cli.js") && listed.includes("package/dist/mod.d.ts"));
      assert.ok(listed.some((f) => /^package\/dist\/src\/bin\/runner-\w+\.js$/.test(f)), "the runner's chunk");

      const app = sb.path("app");
      mkdirSync(app);
      // What the README tells a user: approve bun's postinstall (it links the native runtime).
      writeFileSync(
        join(app, "package.json"),
        JSON.stringify({ name: "app", private: true, type: "module", allowScripts: { bun: true } }),
      );
      const npm = (args: string[]) => run(["npm", ...args], { cwd: app, timeout: 180_000 });
      const installed = npm(["install", "--no-audit", "--no-fund", tarball, "hono"]);
      assert.equal(installed.status, 0, installed.stderr);
      assert.doesNotMatch(installed.stderr, /install-scripts|allowScripts/);
      writeFileSync(
        join(app, "server.ts"),
        `import { Hono } from "hono";
import { onShutdown } from "daemonic";
const app = new Hono().get("/", (c) => c.text("Hello from hono on " + (globalThis.Deno ? "Deno" : "Bun")));
onShutdown(() => console.log("bye"));
const port = Number(process.argv[2] ?? 0);
if (globalThis.Deno) Deno.serve({ port, hostname: "127.0.0.1", onListen: (a) => console.log("listening on " + a.port) }, app.fetch);
else console.log("listening on " + Bun.serve({ port, hostname: "127.0.0.1", fetch: app.fetch }).port);
`,
      );
      // As a user types it in the new project: not inside this suite's own `npm test` (whose INIT_CWD npx keeps).
      const userEnv = { ...process.env, INIT_CWD: undefined };
      const built = run(["npx", "daemonic", "build", "server.ts", "-o", "mydaemon"], {
        cwd: app,
        timeout: 120_000,
        env: userEnv,
      });
      assert.equal(built.status, 0, built.stderr);
      assert.equal(built.stderr.replace(/^npm warn Unknown (user|env) config.*\n/gm, ""), ""); // the progress line is for terminals

      const serves = async (argv: string[], banner: RegExp) => {
        const pidFile = sb.path("d.pid"), logFile = sb.path("d.log");
        writeFileSync(logFile, "");
        const r = run([...argv, "--daemon", "--pid-file", pidFile, "--log-file", logFile, "--", "0"], {
          cwd: app,
          timeout: 60_000,
          env: userEnv,
        });
        assert.equal(r.status, 0, r.stderr);
        const pid = sb.track(Number(r.stdout.trim()));
        assert.equal(procStat(pid).ppid, 1);
        assert.match(await get(await portFromLog(logFile)), banner);
        const stop = run([...argv, "--stop", "--pid-file", pidFile], { cwd: app, env: userEnv });
        assert.equal(stop.status, 0, stop.stderr);
        assert.ok(waitGone(pid, 5000));
        assert.match(readOr(logFile), /bye/);
      };
      await serves([join(app, "mydaemon")], /^Hello from hono on Bun$/);
      // A Deno user: no import map, no deno.json; Deno resolves "daemonic" and "hono" through package.json.
      await serves([DENO, "run", "-A", "npm:daemonic", "run", "server.ts"], /^Hello from hono on Deno$/);
    }),
  );
});
