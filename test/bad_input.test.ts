/**
 * Bad input, table-driven: every row is a command line (and environment) a user could type that must fail
 * with its documented exit code and exactly one line on stderr naming the problem and the fix, having
 * started no process and created, changed or deleted nothing in the test's directory.
 * Under `bun test` the daemon is a built binary; under `deno test` it is the user's `deno run -A npm:daemonic run`.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  eventually,
  fileSandbox,
  FIXTURES,
  pidsMentioning,
  run,
  RUNTIME,
  Sandbox,
  targetFor,
  TEST_USER,
  testUser,
} from "./_helpers.ts";

// The entry under a name no other test uses, so any process it leaves is found by its command line.
const buildDir = fileSandbox({ shared: true }); // the unprivileged rows run the built binary
const entry = join(buildDir.dir, "bad_input_app.ts");
copyFileSync(join(FIXTURES, "app.ts"), entry);
const target = await targetFor([entry], buildDir.dir);
// Its command line, or once it set its title, its name (bad_input_app, bad_input_app_ts master, …).
const marker = "bad_input_app";

/** One bad command line: its arguments (D is the test's directory), the exit code and the fix it must name. */
interface Row {
  args: (D: string) => string[];
  code: number;
  fix: RegExp;
  env?: (D: string) => Record<string, string>;
  /** Run as an unprivileged user. */
  asUser?: boolean;
  /** Another branch's work this row waits for. */
}

const USAGE = 64, NO_INPUT = 66, CANNOT_CREATE = 73, NOT_RUNNING = 7;
/** `--daemon` with the pid file and log inside D, so a wrongly started daemon would show there. */
const start = (
  D: string,
  ...more: string[]
) => ["--daemon", "--pid-file", `${D}/app.pid`, "--log-file", `${D}/app.log`, ...more];
const PLACES: Record<string, string> = {
  DIR: "dir",
  FIFO: "fifo",
  SOCK: "sock",
  LOOP: "loop",
  MISSING: "missing",
  FILE: "file",
};
/** `--daemon` plus `more`, where a leading DIR, FIFO, SOCK, LOOP, MISSING or FILE names that file in D. */
const flag = (code: number, fix: RegExp, ...more: string[]): Row => ({
  args: (D) =>
    start(D, ...more.map((a) => a.replace(/^(DIR|FIFO|SOCK|LOOP|MISSING|FILE)\b/, (p) => `${D}/${PLACES[p]}`))),
  code,
  fix,
});
const SECONDS = /give seconds from 0(\.001)? to 86400/,
  COUNT = /give a whole number from 0 to 1024/,
  OCTAL = /give an octal mask/;

const CASES: Row[] = [
  // Flags
  flag(USAGE, /put them after --/, "--bogus"),
  flag(USAGE, /put them after --/, "-x"),
  flag(USAGE, /give one at most/, "--stop"),
  { args: () => ["--status", "--reload"], code: USAGE, fix: /give one at most/ },
  { args: () => ["--logs", "--hold-logs"], code: USAGE, fix: /give one at most/ },
  { args: () => ["--reload", "--upgrade"], code: USAGE, fix: /give one at most/ },
  flag(USAGE, /Conflicting --keep-alive and --no-keep-alive: give one at most/, "--keep-alive", "--no-keep-alive"),
  flag(USAGE, /Missing value for --workers: give it one/, "--workers"),
  { args: () => ["--daemon", "--pid-file"], code: USAGE, fix: /Missing value for --pid-file/ },
  {
    args: (D) => ["--pid-file", "--daemon", "--log-file", `${D}/app.log`],
    code: USAGE,
    fix: /Missing value for --pid-file/,
  },
  flag(USAGE, /Missing value for --log-level/, "--log-level", "--"),
  flag(USAGE, /without a value/, "--daemon=yes"),
  flag(USAGE, COUNT, "--workers", "-1"),
  flag(USAGE, COUNT, "--workers=-1"),
  flag(USAGE, COUNT, "-w", "-3"),
  flag(USAGE, COUNT, "--workers", "1025"),
  flag(USAGE, COUNT, "--workers", "1.5"),
  flag(USAGE, COUNT, "--workers", "abc"),
  flag(USAGE, COUNT, "--workers", ""),
  flag(USAGE, COUNT, "--workers="),
  flag(USAGE, COUNT, "--workers", "99999999999999999999"),
  flag(USAGE, OCTAL, "--umask", "-1"),
  flag(USAGE, OCTAL, "--umask", "8"),
  flag(USAGE, OCTAL, "--umask", "0o22"),
  flag(USAGE, OCTAL, "--umask", "1234"),
  flag(USAGE, OCTAL, "--umask=0x12"),
  flag(USAGE, OCTAL, "--umask", ""),
  flag(USAGE, SECONDS, "--timeout", "-5"),
  flag(USAGE, SECONDS, "--timeout=-5"),
  flag(USAGE, SECONDS, "--timeout", "4294968"),
  flag(USAGE, SECONDS, "--timeout", "1e20"),
  flag(USAGE, SECONDS, "--timeout", "NaN"),
  flag(USAGE, SECONDS, "--timeout", "Infinity"),
  flag(USAGE, SECONDS, "--timeout", "0x10"),
  flag(USAGE, SECONDS, "--timeout", ""),
  flag(USAGE, SECONDS, "--start-timeout", "0"),
  flag(USAGE, SECONDS, "--start-timeout", "-1"),
  flag(USAGE, SECONDS, "--start-timeout", "86401"),
  // A flag that cannot work in the foreground is refused there, not ignored.
  {
    args: () => ["--start-timeout", "5", "--", "0"],
    code: USAGE,
    fix: /--start-timeout in the foreground.*TimeoutStartSec=, or add --daemon/,
  },
  flag(USAGE, SECONDS, "--worker-timeout", "0"),
  flag(USAGE, SECONDS, "--worker-timeout", "1e3"),
  flag(USAGE, /only goes with --logs/, "--lines", "5"),
  flag(USAGE, /only goes with --logs/, "-f"),
  { args: (D) => ["--logs", "--log-file", `${D}/file`, "--lines", "-5"], code: USAGE, fix: /give a whole number/ },
  { args: (D) => ["--logs", "--log-file", `${D}/file`, "-n", "abc"], code: USAGE, fix: /give a whole number/ },
  {
    args: (D) => ["--logs", "--log-file", `${D}/file`, "--lines=99999999999"],
    code: USAGE,
    fix: /give a whole number/,
  },
  flag(USAGE, /use trace, debug/, "--log-level", "loud"),
  flag(USAGE, /use trace, debug/, "--log-level="),
  flag(USAGE, /use text or json/, "--log-format", "xml"),
  flag(USAGE, /use auto or manual/, "--ready=sometimes"),
  flag(USAGE, /use letters, digits/, "--name", ""),
  flag(USAGE, /use letters, digits/, "--name", "a/b"),
  flag(USAGE, /use letters, digits/, "--name", "a b"),
  {
    args: (D) => ["--daemon", "--pid-file", "", "--log-file", `${D}/app.log`],
    code: USAGE,
    fix: /give a path, or leave the flag out/,
  },
  {
    args: (D) => ["--daemon", "--pid-file=", "--log-file", `${D}/app.log`],
    code: USAGE,
    fix: /give a path, or leave the flag out/,
  },
  {
    args: (D) => ["--daemon", "--pid-file", `${D}/app.pid`, "--log-file", ""],
    code: USAGE,
    fix: /give a path, or leave the flag out/,
  },
  flag(USAGE, /give a path, or leave the flag out/, "--chdir", ""),
  // Paths of every type at --pid-file
  { args: (D) => ["--daemon", "--pid-file", `${D}/dir`], code: CANNOT_CREATE, fix: /--pid-file/ },
  { args: (D) => ["--daemon", "--pid-file", `${D}/fifo`], code: CANNOT_CREATE, fix: /--pid-file/ },
  { args: () => ["--daemon", "--pid-file", "/dev/null"], code: CANNOT_CREATE, fix: /--pid-file/ },
  { args: (D) => ["--daemon", "--pid-file", `${D}/file`], code: CANNOT_CREATE, fix: /--pid-file/ },
  {
    args: (D) => ["--daemon", "--pid-file", `${D}/sock`],
    code: CANNOT_CREATE,
    fix: /is a socket.*pick another --pid-file/,
  },
  { args: (D) => ["--daemon", "--pid-file", `${D}/loop`], code: CANNOT_CREATE, fix: /symbolic link.*--pid-file/ },
  { args: (D) => ["--daemon", "--pid-file", `${D}/loop/app.pid`], code: CANNOT_CREATE, fix: /--pid-file/ },
  {
    args: (D) => ["--daemon", "--pid-file", `${D}/missing/app.pid`],
    code: CANNOT_CREATE,
    fix: /does not exist.*pick another --pid-file/,
  },
  {
    args: (D) => ["--daemon", "--pid-file", `${D}/file/app.pid`],
    code: CANNOT_CREATE,
    fix: /not a directory.*pick another --pid-file/,
  },
  {
    args: () => ["--daemon", "--pid-file", "/proc/app.pid"],
    code: CANNOT_CREATE,
    fix: /\/proc (does not take new files|is not writable): pick another --pid-file/,
  },
  {
    args: () => ["--daemon", "--pid-file", "/etc/daemonic-bad-input.pid"],
    code: CANNOT_CREATE,
    fix: /not writable.*--pid-file/,
    asUser: true,
  },
  // … at --log-file
  flag(CANNOT_CREATE, /is a directory: give a file path: pick another --log-file/, "--log-file", "DIR"),
  flag(CANNOT_CREATE, /FIFO: give a regular file to --log-file/, "--log-file", "FIFO"),
  flag(CANNOT_CREATE, /socket: give a regular file to --log-file/, "--log-file", "SOCK"),
  flag(CANNOT_CREATE, /symbolic link loop: pick another --log-file/, "--log-file", "LOOP"),
  flag(CANNOT_CREATE, /symbolic link loop: pick another --log-file/, "--log-file", "LOOP/app.log"),
  flag(CANNOT_CREATE, /does not exist: create it or pick another --log-file/, "--log-file", "MISSING/app.log"),
  flag(CANNOT_CREATE, /not a directory: pick another --log-file/, "--log-file", "FILE/app.log"),
  flag(CANNOT_CREATE, /\/proc does not take new files: pick another --log-file/, "--log-file", "/proc/app.log"),
  {
    args: (D) => ["--daemon", "--pid-file", `${D}/user/app.pid`, "--log-file", "/etc/daemonic-bad-input.log"],
    code: CANNOT_CREATE,
    fix: /not writable: pick another --log-file/,
    asUser: true,
  },
  // … at --chdir
  flag(NO_INPUT, /is not a directory: create it or pick another/, "--chdir", "FILE"),
  flag(NO_INPUT, /is not a directory: create it or pick another/, "--chdir", "MISSING"),
  flag(NO_INPUT, /is not a directory: create it or pick another/, "--chdir", "FIFO"),
  flag(NO_INPUT, /is not a directory: create it or pick another/, "--chdir", "LOOP"),
  flag(NO_INPUT, /is not a directory: create it or pick another/, "--chdir", "/dev/null"),
  // Control actions with nothing to act on, or the wrong kind of file
  {
    args: (D) => ["--reload", "--pid-file", `${D}/app.pid`],
    code: NOT_RUNNING,
    fix: /not running.*start it with --daemon/,
  },
  {
    args: (D) => ["--upgrade", "--pid-file", `${D}/app.pid`],
    code: NOT_RUNNING,
    fix: /not running.*start it with --daemon/,
  },
  {
    args: (D) => ["--reopen-logs", "--pid-file", `${D}/app.pid`],
    code: NOT_RUNNING,
    fix: /not running.*nothing to reopen/,
  },
  { args: (D) => ["--hold-logs", "--pid-file", `${D}/app.pid`], code: NO_INPUT, fix: /pass --log-file/ },
  { args: (D) => ["--logs", "--pid-file", `${D}/app.pid`], code: NO_INPUT, fix: /pass --log-file/ },
  { args: (D) => ["--logs", "--log-file", `${D}/missing.log`], code: NO_INPUT, fix: /add -f to wait for it/ },
  {
    args: (D) => ["--logs", "--log-file", `${D}/dir`],
    code: NO_INPUT,
    fix: /not a regular file: give the daemon's log file/,
  },
  {
    args: (D) => ["--logs", "--log-file", `${D}/fifo`],
    code: NO_INPUT,
    fix: /not a regular file: give the daemon's log file/,
  },
  // Environment
  // A runtime directory whose private subdirectory is a symlink someone planted: refused, not followed.
  {
    args: () => ["--daemon"],
    env: (D) => ({ XDG_RUNTIME_DIR: `${D}/user` }),
    code: CANNOT_CREATE,
    fix: /Unsafe directory .*\/user\/daemonic: it is a symbolic link.*pass --pid-file/,
    asUser: true,
  },
];

// The directory every row points at: one file of each type.
const sb = new Sandbox();
const D = sb.dir;
const socketServer = createServer();
let userHome = "";
before(async () => {
  mkdirSync(join(D, "dir"));
  writeFileSync(join(D, "file"), "not a pid\n");
  symlinkSync("loop", join(D, "loop"));
  run(["mkfifo", join(D, "fifo")]);
  await new Promise<void>((r) => socketServer.listen(join(D, "sock"), () => r()));
  testUser();
  chmodSync(D, 0o755); // the unprivileged rows look into it
  mkdirSync(join(D, "user"));
  run(["chown", TEST_USER, join(D, "user")]);
  symlinkSync("/tmp", join(D, "user", "daemonic"));
  userHome = mkdtempSync("/tmp/daemonic-test-home-");
  run(["chown", TEST_USER, userHome]);
});
after(async () => {
  await new Promise((r) => socketServer.close(r));
  sb.cleanup();
  run(["rm", "-rf", userHome]);
});

/** Runs a command, killed after 5 s (a row that hangs); async, as Deno's spawnSync fails spawns for a while
 * after one of its timeouts. */
function runBounded(
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(argv[0], argv.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  child.stdout!.on("data", (d) => stdout += d);
  child.stderr!.on("data", (d) => stderr += d);
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  // On exit, not close: a killed launcher's child may still hold the pipes (the leftover check ends it).
  return new Promise((resolve) =>
    child.on("exit", (status) => {
      clearTimeout(timer);
      setTimeout(() => {
        child.stdout!.destroy();
        child.stderr!.destroy();
        resolve({ status, stdout, stderr });
      }, 50);
    })
  );
}

/** Names, types, modes, sizes and mtimes of everything under `dir`. */
function snapshot(dir: string): string[] {
  const entries: string[] = [];
  const walk = (path: string, name: string) => {
    const s = lstatSync(path);
    entries.push(`${name} ${s.mode.toString(8)} ${s.isDirectory() ? "-" : s.size} ${s.mtimeMs} ${s.uid}`);
    if (s.isDirectory()) { for (const child of readdirSync(path).sort()) walk(join(path, child), `${name}/${child}`); }
  };
  walk(dir, ".");
  return entries;
}

describe(`bad input (${RUNTIME})`, () => {
  test("(control) a daemon the entry starts is found by the leftover check", () => {
    const other = new Sandbox();
    try {
      const r = run(target.argv(entry, ["--daemon", "--pid-file", other.path("app.pid"), "--", "0"]));
      const pid = other.track(Number(r.stdout.trim()));
      assert.equal(r.status, 0, r.stderr);
      assert.ok(pidsMentioning(marker).includes(pid), `pid ${pid} not found by "${marker}"`);
    } finally {
      other.cleanup();
    }
  });

  for (const row of CASES) {
    const name = `${row.args(D).join(" ") || "(no args)"}${
      row.env ? ` [${Object.entries(row.env(D)).map(([k, v]) => `${k}=${v}`).join(" ")}]` : ""
    }${row.asUser ? " [unprivileged]" : ""} → ${row.code}`;
    test(name, async () => {
      const beforeFiles = snapshot(D);
      const beforePids = new Set(pidsMentioning(marker));
      const extraEnv: Record<string, string> = {
        ...row.env?.(D),
        ...(row.asUser ? { HOME: userHome, DENO_DIR: join(userHome, "deno") } : {}),
      };
      const argv = target.argv(entry, row.args(D));
      const env: Record<string, string | undefined> = { ...process.env, XDG_RUNTIME_DIR: undefined, ...extraEnv };
      const asUser = [
        "runuser",
        "-u",
        TEST_USER,
        "--",
        "env",
        ...Object.entries(extraEnv).map(([k, v]) => `${k}=${v}`),
      ];
      const r = await runBounded(row.asUser ? [...asUser, ...argv] : argv, env as NodeJS.ProcessEnv);
      const started = () => pidsMentioning(marker).filter((pid) => !beforePids.has(pid)).map((pid) => sb.track(pid));
      // A failed start's leftovers may take a moment to exit; one that runs on is a failure.
      const gone = await eventually(() => started().length === 0, 2000);
      const left = started();
      for (const pid of left) process.kill(pid, "SIGKILL"); // now, so no row runs beside another's leftovers
      assert.ok(gone, `left running: ${left.join(", ")}`);
      assert.equal(r.status, row.code, `exit ${r.status}; stderr: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, `not one line on stderr:\n${r.stderr}`);
      assert.match(lines[0], row.fix);
      assert.doesNotMatch(r.stderr, /internal error|    at /);
      assert.equal(r.stdout, "", "a failure prints nothing on stdout");
      assert.deepEqual(snapshot(D), beforeFiles, "the test directory changed");
    });
  }

  test("--reopen-logs fails (73, one line) when the daemon could not reopen its log, and succeeds once it can", async () => {
    const other = new Sandbox();
    try {
      const logs = other.path("logs"), pidFile = other.path("app.pid");
      mkdirSync(logs);
      const control = (action: string) => run(target.argv(entry, [action, "--pid-file", pidFile]));
      const r = run(
        target.argv(entry, ["--daemon", "--pid-file", pidFile, "--log-file", `${logs}/app.log`, "--", "0"]),
      );
      other.track(Number(r.stdout.trim()));
      assert.equal(r.status, 0, r.stderr);
      renameSync(logs, `${logs}.1`); // rotated away, and a file now stands where the directory was
      writeFileSync(logs, "");
      const failed = control("--reopen-logs");
      assert.equal(failed.status, 73, failed.stderr);
      assert.equal(failed.stderr.trimEnd().split("\n").length, 1, failed.stderr);
      assert.match(failed.stderr, /still writes to the old file.*fix the path, then run --reopen-logs again/);
      rmSync(logs);
      mkdirSync(logs);
      const ok = control("--reopen-logs");
      assert.equal(ok.status, 0, ok.stderr);
      assert.ok(existsSync(`${logs}/app.log`));
      assert.equal(control("--stop").status, 0);
    } finally {
      other.cleanup();
    }
  });
});
