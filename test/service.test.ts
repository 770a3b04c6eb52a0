/**
 * `--install-service` against real systemd: a Debian bookworm container booted with systemd-nspawn
 * (test/_container.ts), the daemon bound in read-only at its host path. Under `bun test` the daemon is a
 * compiled binary; under `deno test` it is the user's `deno run -A npm:daemonic run`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { after, describe, test } from "node:test";
import {
  compiledTarget,
  eventually,
  FIXTURES,
  readOr,
  runTarget,
  RUNTIME,
  Sandbox,
  sandboxed,
  type Target,
} from "./_helpers.ts";
import { Container, containerSkipReason, runtimeBinds, waitUntil } from "./_container.ts";

const skip = containerSkipReason();
const buildDir = new Sandbox();
chmodSync(buildDir.dir, 0o755); // the service user (nobody) runs the binary from here
// The versions a deploy test moves in: test/fixtures/versioned.ts with its VERSION rewritten.
const versionSource = (v: number) => readOr(`${FIXTURES}/versioned.ts`).replace(`"v1"`, `"v${v}"`);
for (const v of [1, 2, 3]) writeFileSync(`${buildDir.dir}/ver-v${v}.ts`, versionSource(v));
// Built and booted at load time: hooks have a short timeout under bun test.
const target: Target = RUNTIME === "bun"
  ? await compiledTarget([
    "server.ts",
    "stall.ts",
    "throws.ts",
    ...[1, 2, 3].map((v) => `${buildDir.dir}/ver-v${v}.ts`),
  ], buildDir.dir)
  : runTarget;
const box = skip ? undefined : new Container(RUNTIME === "bun" ? [buildDir.dir] : runtimeBinds());
after(() => {
  box?.cleanup();
  buildDir.cleanup();
});
try {
  await box?.boot();
} catch (err) {
  box?.cleanup(); // the after hook does not run when loading fails
  throw err;
}

/** The runner for `entry` with `args`, run inside the container. */
function inside(entry: string, args: string[]) {
  return box!.exec(target.argv(`${FIXTURES}/${entry}`, args), { timeout: 120_000 });
}

/** Installs and starts `entry` as NAME.service; returns its main pid (a pid inside the container). */
function installNow(name: string, entry: string, args: string[], entryArgs: string[]): number {
  const r = inside(entry, ["--install-service", "--now", "--name", name, ...args, "--", ...entryArgs]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, new RegExp(`installed /etc/systemd/system/${name}.service, enabled and started`));
  return Number(box!.show(name, "MainPID"));
}

function uninstall(name: string, entry = "server.ts"): void {
  inside(entry, ["--uninstall-service", "--name", name]);
}

/** The children of `pid` inside the container: under the unit's supervisor (MainPID), the entry's process. */
function childrenIn(pid: number): number[] {
  return box!.read(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/).filter(Boolean).map(Number);
}

/** The pid that answered a GET on `port` inside the container. */
function answeredBy(port: number): number {
  return Number(/Hello from PID (\d+)/.exec(box!.get(port))?.[1]);
}

/** Pids in the unit's cgroup, as systemd sees them. */
function cgroupPids(name: string): number[] {
  const cgroup = box!.show(name, "ControlGroup");
  if (!cgroup) return [];
  return box!.read(`/sys/fs/cgroup/unified${cgroup}/cgroup.procs`).trim().split("\n").filter(Boolean).map(Number);
}

if (skip) {
  // Said out loud: a skipped describe alone shows nothing under bun test.
  console.error(`test/service.test.ts: skipped: ${skip}`);
  test(`systemd service tests against real systemd: skipped, ${skip}`, { skip });
}

describe(`systemd service (${RUNTIME}, real systemd in a container)`, { skip }, () => {
  test("--print-service: a complete unit systemd-analyze verify accepts; nothing is installed", () => {
    const r = inside("server.ts", [
      "--print-service",
      "--name",
      "printed",
      "--service-user",
      "www-data",
      "--watchdog-sec",
      "3",
      "--timeout",
      "7",
      "--",
      "8080",
      "a b$%",
    ]);
    assert.equal(r.status, 0, r.stderr);
    for (
      const line of [
        "[Unit]",
        "Type=notify",
        "Restart=on-failure",
        "TimeoutStopSec=12",
        "WatchdogSec=3",
        "User=www-data",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "RuntimeDirectory=printed",
        "NoNewPrivileges=yes",
        "ProtectSystem=full",
        "[Install]",
        "WantedBy=multi-user.target",
      ]
    ) {
      assert.ok(r.stdout.split("\n").includes(line), `no ${line} in\n${r.stdout}`);
    }
    // A private /tmp would hide what the command names there: the compiled binary this suite builds in /tmp,
    // or (Deno) the project with the packed package installed.
    const inTmp = /^ExecStart=(.* )?\/tmp\//m.test(r.stdout);
    assert.equal(r.stdout.split("\n").includes("PrivateTmp=yes"), !inTmp, r.stdout);
    assert.match(r.stdout, /^ExecReload=\S+.* --reload --pid-file \/run\/printed\/printed.pid --name printed$/m);
    assert.match(
      r.stdout,
      /^ExecStop=\S+.* --stop --pid-file \/run\/printed\/printed.pid --name printed --timeout 7$/m,
    );
    assert.match(r.stdout, /^ExecStart=.* -- 8080 "a b\$\$%%"$/m);
    assert.doesNotMatch(r.stdout, /\/bin\/kill/);
    assert.equal(
      box!.exec(["test", "-e", "/etc/systemd/system/printed.service"]).status,
      1,
      "--print-service installed something",
    );
    const unitFile = box!.exec(["sh", "-c", "cat > /tmp/printed.service"], { input: r.stdout });
    assert.equal(unitFile.status, 0);
    const verify = box!.exec(["systemd-analyze", "verify", "/tmp/printed.service"]);
    assert.equal(verify.status, 0, verify.stderr);
    assert.equal(verify.stderr.trim(), "", "systemd-analyze verify complained");
  });

  test("--install-service --now: active, enabled, answers; kill -9 → restarted; systemctl stop → clean; --uninstall-service removes it", async () => {
    try {
      const pid = installNow("web", "server.ts", [], ["8080"]);
      assert.equal(box!.show("web", "ActiveState"), "active");
      assert.equal(box!.exec(["systemctl", "is-enabled", "web"]).stdout.trim(), "enabled");
      // The unit runs a supervisor in the foreground (MainPID), the entry in its one child.
      assert.deepEqual(childrenIn(pid), [answeredBy(8080)], "the main pid's child is not the entry that answers");
      assert.equal(box!.show("web", "Type"), "notify");

      // kill -9 of the main pid (a minbase root has no /bin/kill: systemctl sends it).
      assert.equal(box!.exec(["systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", "web"]).status, 0);
      let restarted = 0;
      const back = waitUntil(() =>
        box!.show("web", "NRestarts") === "1" && box!.show("web", "ActiveState") === "active" &&
        (restarted = Number(box!.show("web", "MainPID"))) > 0 && restarted !== pid
      );
      assert.ok(back, `not restarted: NRestarts=${box!.show("web", "NRestarts")} ${box!.show("web", "ActiveState")}`);
      assert.ok(
        await eventually(() => childrenIn(restarted).includes(answeredBy(8080))),
        "the restarted service does not answer",
      );

      const [entry] = childrenIn(restarted);
      const stop = box!.exec(["systemctl", "stop", "web"]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.equal(box!.show("web", "ActiveState"), "inactive", "a clean stop ends inactive, not failed");
      assert.equal(box!.show("web", "Result"), "success");
      assert.deepEqual(cgroupPids("web"), [], "processes left in the unit's cgroup");
      // By _PID: journald does not always tell the unit of a stdout stream in this container.
      const journal = box!.exec(["journalctl", `_PID=${entry}`, "--no-pager", "-o", "cat"]).stdout;
      assert.match(journal, /shutdown hook ran/, "the entry's onShutdown hooks did not run on systemctl stop");
    } finally {
      const r = inside("server.ts", ["--uninstall-service", "--name", "web"]);
      assert.equal(r.status, 0, r.stderr);
    }
    assert.equal(box!.exec(["test", "-e", "/etc/systemd/system/web.service"]).status, 1, "the unit file is left");
    assert.notEqual(box!.exec(["systemctl", "is-enabled", "web"]).stdout.trim(), "enabled");
  });

  test(
    "replace the binary (or edit the entry), systemctl reload: the new version answers, no request fails, systemd hears RELOADING=1 then READY=1 from MainPID; --upgrade moves MainPID to the new master; kill -9 of it: restarted",
    sandboxed(async (sb) => {
      box!.exec(["systemd-analyze", "log-level", "debug"]); // systemd then logs every notification it accepts, with the sender's pid
      // Bun: the binary copied to /usr/local/bin, each new build moved over it; Deno: the entry in /srv, edited in place.
      const place = (v: number) =>
        RUNTIME === "bun"
          ? assert.equal(
            box!.exec([
              "sh",
              "-c",
              `install -m 755 ${buildDir.dir}/ver_v${v}_ts /usr/local/bin/ver.new && mv /usr/local/bin/ver.new /usr/local/bin/ver`,
            ]).status,
            0,
          )
          : writeFileSync(`${box!.merged}/srv/ver.ts`, versionSource(v));
      const argv = (args: string[]) =>
        RUNTIME === "bun" ? ["/usr/local/bin/ver", ...args] : runTarget.argv("/srv/ver.ts", args);
      place(1);
      try {
        const r = box!.exec(argv(["--install-service", "--now", "--name", "ver", "--", "8086"]), { timeout: 120_000 });
        assert.equal(r.status, 0, r.stderr + r.stdout);
        const master = Number(box!.show("ver", "MainPID"));
        assert.match(box!.get(8086), /\(v1\)/);
        assert.equal(box!.net(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/tcp_migrate_req"]).status, 0); // see the --workers test
        const out = sb.path("client.log");
        const client = spawn("nsenter", [
          "-t",
          String(box!.initPid),
          "-n",
          "bash",
          "-c",
          `while :; do a=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | socat -t 2 -T 3 - TCP:127.0.0.1:8086 2>&1); case $a in *Hello*) echo "ok $a" | tr '\\r\\n' '  '; echo;; *) echo "FAIL $a" | tr '\\r\\n' '  '; echo;; esac; done >> ${out}`,
        ], { stdio: "ignore" });
        sb.track(client.pid);
        assert.ok(await eventually(() => readOr(out).includes("ok"), 5000));
        place(2);
        const reload = box!.exec(["systemctl", "reload", "ver"]);
        assert.equal(reload.status, 0, reload.stderr);
        assert.match(box!.get(8086), /\(v2\)/, "systemctl reload did not load the new version");
        assert.equal(Number(box!.show("ver", "MainPID")), master, "the supervisor was replaced by a reload");
        const heard = box!.exec(["journalctl", "--no-pager", "-o", "cat"]).stdout.split("\n").filter((l) =>
          l.includes(`Got notification message from PID ${master}`)
        ).map((l) => /\((.*)\)/.exec(l)?.[1]);
        const reloading = heard.indexOf("RELOADING=1");
        assert.ok(
          reloading > 0 && heard.slice(reloading + 1).includes("READY=1"),
          `notifications systemd heard: ${heard.join(", ")}`,
        );

        place(3);
        const upgrade = box!.exec(argv(["--upgrade", "--pid-file", "/run/ver/ver.pid", "--name", "ver"]), {
          timeout: 120_000,
        });
        assert.equal(upgrade.status, 0, upgrade.stderr + upgrade.stdout);
        const upgraded = Number(box!.show("ver", "MainPID"));
        assert.match(upgrade.stdout, new RegExp(`^ver: upgraded: master ${master} → ${upgraded} `));
        assert.notEqual(upgraded, master);
        assert.match(box!.get(8086), /\(v3\)/);
        assert.ok(
          waitUntil(() => box!.exec(["test", "-e", `/proc/${master}`]).status !== 0, 15_000),
          "the old master did not retire",
        );
        assert.equal(box!.show("ver", "ActiveState"), "active");
        const lines = readOr(out).length;
        assert.ok(await eventually(() => readOr(out).length > lines + 20, 5000), "the client stopped getting answers");
        process.kill(client.pid!, "SIGKILL");
        assert.doesNotMatch(
          readOr(out),
          /FAIL/,
          `failed requests: ${readOr(out).split("\n").filter((l) => l.startsWith("FAIL")).join("\n")}`,
        );

        assert.equal(box!.exec(["systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", "ver"]).status, 0);
        const back = waitUntil(() =>
          box!.show("ver", "NRestarts") === "1" && box!.show("ver", "ActiveState") === "active" &&
          ![0, upgraded].includes(Number(box!.show("ver", "MainPID")))
        );
        assert.ok(
          back,
          `not restarted after kill -9 of the upgraded master: NRestarts=${box!.show("ver", "NRestarts")} ${
            box!.show("ver", "ActiveState")
          }`,
        );
        assert.ok(await eventually(() => /\(v3\)/.test(box!.get(8086)), 10_000));
      } finally {
        box!.exec(["systemd-analyze", "log-level", "info"]);
        box!.exec(argv(["--uninstall-service", "--name", "ver"]), { timeout: 120_000 });
      }
    }),
  );

  test(
    "--workers 2: systemctl reload replaces the workers, a sequential client sees no failure",
    sandboxed(async (sb) => {
      try {
        const master = installNow("pool", "server.ts", ["--workers", "2"], ["8082"]);
        assert.equal(box!.show("pool", "Type"), "notify"); // the master in the foreground, MAINPID
        assert.equal(Number(box!.show("pool", "MainPID")), master);
        const workers = () =>
          box!.read(`/proc/${master}/task/${master}/children`).trim().split(/\s+/).filter(Boolean).sort();
        const before = workers();
        assert.equal(before.length, 2, `workers: ${before}`);
        // Lossless needs the kernel to hand a closing listener's queue to its SO_REUSEPORT siblings (see the
        // README); the knob is per network namespace, and this one is the container's own.
        assert.equal(box!.net(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/tcp_migrate_req"]).status, 0);
        const out = sb.path("client.log");
        // A sequential client inside the container's network: one line per request, ok or FAIL.
        const client = spawn("nsenter", [
          "-t",
          String(box!.initPid),
          "-n",
          "bash",
          "-c",
          `while :; do a=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | socat -t 2 -T 3 - TCP:127.0.0.1:8082 2>&1); case $a in *Hello*) echo ok;; *) echo "FAIL $a" | tr '\\r\\n' '  '; echo;; esac; done >> ${out}`,
        ], { stdio: "ignore" });
        sb.track(client.pid);
        assert.ok(await eventually(() => readOr(out).includes("ok"), 5000));
        const r = box!.exec(["systemctl", "reload", "pool"]);
        assert.equal(r.status, 0, r.stderr);
        const replaced = await eventually(() => {
          const now = workers();
          return now.length === 2 && now.every((p) => !before.includes(p));
        }, 30_000);
        const lines = readOr(out).length;
        assert.ok(await eventually(() => readOr(out).length > lines + 20, 5000), "the client stopped getting answers");
        process.kill(client.pid!, "SIGKILL");
        assert.ok(replaced, `workers not replaced: ${before} → ${workers()}`);
        assert.equal(Number(box!.show("pool", "MainPID")), master);
        assert.doesNotMatch(
          readOr(out),
          /FAIL/,
          `failed requests during the reload: ${
            readOr(out).split("\n").filter((l) => l.startsWith("FAIL")).join("\n")
          }`,
        );
      } finally {
        uninstall("pool");
      }
    }),
  );

  test("--watchdog-sec: systemd kills an entry whose event loop blocks, and restarts it", () => {
    try {
      const pid = installNow("hung", "stall.ts", ["--watchdog-sec", "2"], ["8083"]);
      assert.match(box!.get(8083), /Hello/);
      box!.net(["timeout", "1", "socat", "-", "TCP:127.0.0.1:8083"], { input: "GET /stall HTTP/1.0\r\n\r\n" });
      const killed = waitUntil(() => box!.show("hung", "NRestarts") === "1", 15_000);
      assert.ok(killed, `not restarted after the watchdog: ${box!.show("hung", "ActiveState")}`);
      assert.notEqual(Number(box!.show("hung", "MainPID")), pid);
      assert.match(box!.exec(["journalctl", "-u", "hung", "--no-pager"]).stdout, /[Ww]atchdog timeout/);
    } finally {
      uninstall("hung", "stall.ts");
    }
  });

  test("--service-user nobody: the entry runs as nobody and binds port 80", () => {
    try {
      const pid = installNow("low", "server.ts", ["--service-user", "nobody", "--service-group", "nogroup"], ["80"]);
      assert.equal(box!.show("low", "ActiveState"), "active");
      const [entry] = childrenIn(pid);
      assert.equal(answeredBy(80), entry);
      for (const p of [pid, entry]) {
        const status = box!.read(`/proc/${p}/status`);
        assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
        assert.match(status, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
      }
    } finally {
      uninstall("low");
    }
  });

  test("--user nobody keeps its privilege drop in the unit: the entry serves port 80 as uid 65534; with --workers the master stays root, each worker is nobody", () => {
    try {
      const pid = installNow("dropped", "server.ts", ["--user", "nobody"], ["80"]);
      assert.match(box!.read("/etc/systemd/system/dropped.service"), /^ExecStart=.* --user nobody( |$)/m);
      // Keep-alive's supervisor (MainPID) stays root, as a master does; the entry in its child is nobody.
      assert.match(box!.read(`/proc/${pid}/status`), /^Uid:\s+0\s/m, "the supervisor keeps root (for its pid file)");
      const [entry] = childrenIn(pid);
      assert.match(
        box!.read(`/proc/${entry}/status`),
        /^Uid:\s+65534\s+65534\s+65534\s+65534$/m,
        "the entry runs as root",
      );
      assert.equal(answeredBy(80), entry);
      const pool = installNow(
        "dropped-pool",
        "server.ts",
        ["--user", "nobody", "--group", "nogroup", "--workers", "2"],
        ["81"],
      );
      assert.match(
        box!.read(`/proc/${pool}/status`),
        /^Uid:\s+0\s/m,
        "the master keeps root (for its pid file and log)",
      );
      const workers = box!.read(`/proc/${pool}/task/${pool}/children`).trim().split(/\s+/).filter(Boolean);
      assert.equal(workers.length, 2, `workers: ${workers}`);
      for (const w of workers) {
        const ws = box!.read(`/proc/${w}/status`);
        assert.match(ws, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m, `worker ${w} is not nobody`);
        assert.match(ws, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m, `worker ${w} is not in nogroup`);
      }
      assert.match(box!.get(81), /Hello from PID/);
    } finally {
      uninstall("dropped");
      uninstall("dropped-pool");
    }
  });

  test("--install-service --now of an entry that fails to start: exit 69 naming the journal, no unit left", () => {
    const r = inside("throws.ts", ["--install-service", "--now", "--name", "broken", "--", "top"]);
    assert.equal(r.status, 69, r.stderr + r.stdout);
    assert.match(
      r.stderr,
      /Cannot install broken.service: systemctl enable --now broken.service failed.*removed \/etc\/systemd\/system\/broken.service again/,
    );
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.equal(box!.exec(["test", "-e", "/etc/systemd/system/broken.service"]).status, 1, "the unit is left");
    assert.equal(
      box!.exec(["test", "-e", "/etc/systemd/system/multi-user.target.wants/broken.service"]).status,
      1,
      "still enabled",
    );
    assert.notEqual(box!.show("broken", "LoadState"), "loaded");
  });

  test("a unit daemonic did not write is neither overwritten nor removed", () => {
    const mine = "[Service]\nExecStart=/bin/true\n";
    box!.exec(["sh", "-c", "cat > /etc/systemd/system/theirs.service"], { input: mine });
    try {
      const install = inside("server.ts", ["--install-service", "--name", "theirs"]);
      assert.equal(install.status, 73, install.stderr);
      assert.match(install.stderr, /a unit not written by daemonic is there/);
      const uninstall = inside("server.ts", ["--uninstall-service", "--name", "theirs"]);
      assert.equal(uninstall.status, 64, uninstall.stderr);
      assert.equal(box!.read("/etc/systemd/system/theirs.service"), mine);
      const absent = inside("server.ts", ["--uninstall-service", "--name", "never-installed"]);
      assert.equal(absent.status, 66, absent.stderr);
      assert.match(absent.stderr, /no \/etc\/systemd\/system\/never-installed.service: nothing to remove/);
    } finally {
      box!.exec(["rm", "-f", "/etc/systemd/system/theirs.service"]);
    }
  });

  test("--user-service: a user's own systemd runs it (lingering user), --uninstall-service removes it", () => {
    assert.equal(box!.exec(["sh", "-c", "id alice || useradd --create-home alice"]).status, 0);
    assert.equal(box!.exec(["loginctl", "enable-linger", "alice"]).status, 0);
    const uid = box!.exec(["id", "-u", "alice"]).stdout.trim();
    assert.ok(
      waitUntil(() => box!.show(`user@${uid}.service`, "ActiveState") === "active"),
      "alice's systemd did not start",
    );
    const asAlice = (argv: string[]) =>
      box!.exec([
        "runuser",
        "-u",
        "alice",
        "--",
        "env",
        `XDG_RUNTIME_DIR=/run/user/${uid}`,
        "HOME=/home/alice",
        ...argv,
      ], { timeout: 120_000 });
    const system = asAlice(target.argv(`${FIXTURES}/server.ts`, ["--install-service", "--name", "mine"]));
    assert.equal(system.status, 77, system.stderr);
    assert.match(system.stderr, /needs root: run it with sudo, or pass --user-service/);
    assert.equal(box!.exec(["test", "-e", "/etc/systemd/system/mine.service"]).status, 1);
    const r = asAlice(
      target.argv(`${FIXTURES}/server.ts`, [
        "--install-service",
        "--user-service",
        "--now",
        "--name",
        "mine",
        "--",
        "8085",
      ]),
    );
    try {
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /installed \/home\/alice\/.config\/systemd\/user\/mine.service, enabled and started/);
      const pid = Number(asAlice(["systemctl", "--user", "show", "-p", "MainPID", "--value", "mine"]).stdout.trim());
      assert.deepEqual(childrenIn(pid), [answeredBy(8085)]);
      assert.match(box!.read(`/proc/${answeredBy(8085)}/status`), new RegExp(`^Uid:\\s+${uid}\\s`, "m"));
    } finally {
      const u = asAlice(
        target.argv(`${FIXTURES}/server.ts`, ["--uninstall-service", "--user-service", "--name", "mine"]),
      );
      assert.equal(u.status, 0, u.stderr);
    }
    assert.equal(box!.exec(["test", "-e", "/home/alice/.config/systemd/user/mine.service"]).status, 1);
  });

  test("after a reboot of the container the enabled service comes back", async () => {
    try {
      installNow("boot", "server.ts", [], ["8084"]);
      box!.shutdown();
      await box!.boot();
      assert.equal(box!.show("boot", "ActiveState"), "active");
      assert.equal(box!.exec(["systemctl", "is-enabled", "boot"]).stdout.trim(), "enabled");
      assert.match(box!.get(8084), /Hello from PID/);
    } finally {
      uninstall("boot");
    }
  });
});
