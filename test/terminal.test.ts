/**
 * The binary on a terminal, driven as a person would: a pseudo-terminal of 80 columns (util-linux's
 * `script`), its output read as it comes, Ctrl-C typed. The foreground says where it serves once ready
 * (and says nothing when stderr is no terminal), Ctrl-C stops it through its shutdown hooks, --help fits.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { after, describe, test } from "node:test";
import { eventually, exchange, fileSandbox, FIXTURES, freePort, sandboxed, targetFor, waitGone } from "./_helpers.ts";

const buildDir = fileSandbox();
const target = await targetFor(["server.ts"], buildDir.dir);
const server = (args: string[]) => target.argv(`${FIXTURES}/server.ts`, args);

const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;

/** A command on a pseudo-terminal of 80 columns: what it prints (as the terminal shows it), keys typed to it. */
class Terminal {
  readonly child: ChildProcess;
  output = "";
  private readonly exit: Promise<number | null>;
  constructor(argv: string[]) {
    // -e: script exits with the command's code; -f: its output is passed on as it comes.
    const command = `stty cols 80 rows 24; exec ${argv.map(quote).join(" ")}`;
    this.child = spawn("script", ["-qefc", command, "/dev/null"], { stdio: ["pipe", "pipe", "inherit"] });
    this.child.stdout!.on("data", (d) => this.output += String(d).replaceAll("\r", ""));
    this.exit = new Promise((resolve) => this.child.on("close", (code) => resolve(code)));
  }
  /** Waits for `pattern` in the output; fails with what was printed. */
  async waitFor(pattern: RegExp, ms = 30_000): Promise<RegExpExecArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = pattern.exec(this.output);
      if (m) return m;
      if (Date.now() > end || this.child.exitCode !== null) {
        assert.fail(`no ${pattern} in the terminal:\n${this.output}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  type(keys: string): void {
    this.child.stdin!.write(keys);
  }
  /** The command's exit code, once it has ended (bounded by `ms`). */
  async exited(ms = 30_000): Promise<number | null> {
    const timer = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), ms));
    const code = await Promise.race([this.exit, timer]);
    if (code === "timeout") assert.fail(`still running after ${ms} ms:\n${this.output}`);
    return code;
  }
}

const BANNER = /^\S+ \(pid (\d+)(, 2 workers)?\) listening on 127\.0\.0\.1:(\d+): Ctrl-C to stop$/m;

describe(`on a terminal (${target.name})`, () => {
  test(
    "the foreground says once where it serves and how to stop; Ctrl-C runs the shutdown hooks and exits 0",
    sandboxed(async (sb) => {
      const term = new Terminal(server(["--", "0"]));
      sb.track(term.child.pid);
      const [, pid, , port] = await term.waitFor(BANNER);
      sb.track(Number(pid));
      assert.equal(term.output.match(/Ctrl-C to stop/g)?.length, 1, term.output);
      assert.match(await exchange(Number(port)), new RegExp(`Hello from PID ${pid}\\n$`));
      term.type("\x03");
      assert.equal(await term.exited(), 0, term.output);
      assert.match(term.output, /shutdown hook ran/);
      assert.ok(waitGone(Number(pid), 5000));
    }),
  );

  test(
    "with --workers 2 the master says it, with the workers' address; Ctrl-C stops them all",
    sandboxed(async (sb) => {
      const term = new Terminal(server(["--workers", "2", "--", String(await freePort())])); // port 0: one port each
      sb.track(term.child.pid);
      const [, pid, workers, port] = await term.waitFor(BANNER);
      sb.track(Number(pid));
      assert.equal(workers, ", 2 workers");
      const answer = await exchange(Number(port));
      const worker = Number(/Hello from PID (\d+)/.exec(answer)?.[1]);
      sb.track(worker);
      assert.ok(worker && worker !== Number(pid), answer);
      term.type("\x03");
      assert.equal(await term.exited(), 0, term.output);
      assert.ok(waitGone(Number(pid), 5000) && waitGone(worker, 5000));
    }),
  );

  test(
    "without a terminal the foreground prints no such line (scripts and systemd stay quiet)",
    sandboxed(async (sb) => {
      // --pid-file: readiness leaves PIDFILE.log-path, in the callback that would print the line.
      const pidFile = sb.path("fg.pid");
      const [cmd, ...args] = server(["--pid-file", pidFile, "--log-file", sb.path("fg.log"), "--", "0"]);
      const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
      sb.track(child.pid);
      let output = "";
      child.stdout.on("data", (d) => output += d);
      child.stderr.on("data", (d) => output += d);
      const exited = new Promise((r) => child.on("close", r));
      assert.ok(await eventually(() => existsSync(`${pidFile}.log-path`), 30_000), "never ready");
      // The runner's pid (under `deno task`, a child of the one spawned); SIGTERM is handled once the readiness
      // callback has run to its end.
      process.kill(sb.track(parseInt(readFileSync(pidFile, "utf8"))), "SIGTERM");
      assert.equal(await exited, 0);
      assert.equal(output, "");
    }),
  );

  test(
    "--help fits 80 columns (each line at most 80 characters)",
    sandboxed((sb) => {
      const term = new Terminal(server(["--help"]));
      sb.track(term.child.pid);
      return (async () => {
        assert.equal(await term.exited(), 0, term.output);
        const wide = term.output.split("\n").filter((line) => line.length > 80);
        assert.deepEqual(wide, [], `${wide.length} lines wider than 80 columns`);
      })();
    }),
  );
});
