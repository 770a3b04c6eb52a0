/**
 * Containers, on a real engine (Debian's podman with runc, as root; scripts/test-roots.sh containers installs
 * them once): `daemonic build --image` makes an archive `podman load` takes, the same bytes each time; the
 * image runs as nonroot, answers, is probed with `/app --status` (3 before it is ready, 0 while it serves),
 * stops on `podman stop` with its shutdown hook and exit 0; under `--cpus 1`, `--workers auto` starts one
 * worker and `--metrics` passes promtool. Every container and image a test makes is removed by its id.
 * The images are built with Bun whatever runtime runs this file, so `npm test` runs it once, in the bun pass
 * (scripts/test.sh).
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, describe, test } from "node:test";
import { DaemonError } from "../src/errors.ts";
import { checkLibraries, imagePlatform, librariesOf } from "../src/build/image.ts";
import { parse } from "yaml";
import { BUN, childrenOf, CLI, eventually, FIXTURES, readOr, ROOT, run, RUNTIME, Sandbox } from "./_helpers.ts";
import { buildBinary, IS_ROOT, setup, skipUnlessRoot } from "./_roots.ts";

if (IS_ROOT) setup("containers", "arm64");
const dir = new Sandbox();
const images: string[] = [];
after(() => {
  for (const id of images) run(["podman", "rmi", "-f", id]);
  dir.cleanup();
});

const ENGINE = ["podman", "--runtime", "runc"];
const RUN = [
  ...ENGINE,
  "run",
  "-d",
  "--ulimit",
  "nofile=1024:1024",
  "--ulimit",
  "nproc=4096:4096",
  "--network",
  "host",
];
const tag = `daemonic-test-${RUNTIME}-${process.pid}`;
/** Builds, loads and (arm64) qemu take longer than the suite's 60 s per test on a loaded machine. */
const SLOW = { timeout: 300_000 };

function buildImage(
  name: string,
  extra: string[] = [],
  fixture = "server.ts",
): { tar: string; ran: ReturnType<typeof run> } {
  const tar = join(dir.dir, `${name}.tar`);
  return {
    tar,
    ran: run([BUN, CLI, "build", join(FIXTURES, fixture), "--image", `${tag}:${name}`, "-o", tar, ...extra], {
      timeout: 300_000,
    }),
  };
}

/** `tar -t` (with `flags`) of the image's one layer. */
function layerListing(tar: string, flags: string): string {
  const r = run([
    "bash",
    "-c",
    `tar -xOf "$1" "$(tar -tf "$1" | grep -E '^[0-9a-f]{64}\\.tar$')" | tar ${flags}`,
    "-",
    tar,
  ]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** Loads `tar`; returns the image ID podman gives it (recorded for removal). */
function load(tar: string): string {
  const r = run(["podman", "load", "-q", "-i", tar], { timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const loaded = /Loaded image(?:\(s\))?: (\S+)/.exec(r.stdout)?.[1];
  assert.ok(loaded, r.stdout);
  const id = run(["podman", "image", "inspect", "--format", "{{.Id}}", loaded]).stdout.trim();
  images.push(id);
  return id;
}

/** A container of `image` with `args`, removed (by its id) when `body` ends, however it ends. */
async function inContainer(
  image: string,
  options: string[],
  args: string[],
  body: (id: string, logs: () => string) => Promise<void>,
): Promise<void> {
  const started = run([...RUN, ...options, image, ...args], { timeout: 60_000 });
  assert.equal(started.status, 0, started.stderr);
  const id = started.stdout.trim();
  try {
    await body(id, () => {
      const r = run(["podman", "logs", id]);
      return r.stdout + r.stderr;
    });
  } finally {
    run(["podman", "rm", "-f", "-t", "0", id], { timeout: 60_000 });
  }
}

describe(`daemonic build --image, run under podman and runc (${RUNTIME})`, { skip: skipUnlessRoot }, () => {
  test(
    "the archive is the same bytes each time, at most the binary + 8 MB: /app, the libraries ldd names, no shell",
    SLOW,
    () => {
      const first = buildImage("a"), second = buildImage("b");
      assert.equal(first.ran.status, 0, first.ran.stderr);
      assert.equal(second.ran.status, 0, second.ran.stderr);
      const again = buildImage("a");
      assert.equal(again.ran.status, 0, again.ran.stderr);
      const bytes = readFileSync(first.tar);
      assert.ok(bytes.equals(readFileSync(again.tar)), "the same input gave different archives");
      const binary = buildBinary("server.ts", join(dir.dir, "server"));
      assert.ok(
        statSync(first.tar).size <= statSync(binary).size + 8 * 1024 * 1024,
        `${statSync(first.tar).size} bytes`,
      );
      const outer = run(["tar", "-tf", first.tar]).stdout.split("\n").filter(Boolean);
      assert.deepEqual(outer.map((p) => p.replace(/^[0-9a-f]{64}/, "HEX")).sort(), [
        "HEX.json",
        "HEX.tar",
        "manifest.json",
      ]);
      const listed = layerListing(first.tar, "-tv");
      const files = listed.split("\n").filter((l) => l.startsWith("-")).map((l) => l.split(/\s+/).pop()!);
      const ldd = run(["ldd", binary]).stdout.match(/\/\S+/g)!.map((p) => basename(p)).sort();
      assert.deepEqual(files.filter((f) => f.startsWith("lib")).map((f) => basename(f)).sort(), ldd);
      assert.deepEqual(files.filter((f) => !f.startsWith("lib")).sort(), ["app", "etc/group", "etc/passwd"]);
      assert.ok(listed.split("\n").filter(Boolean).every((l) => / 0\/0 .* 1970-01-01 00:00 /.test(l)), listed);
    },
  );

  test(
    "podman load takes it; it runs as 65532, answers, the exec probe says 3 until ready then 0, podman stop runs the hook and exits 0",
    SLOW,
    async () => {
      const { tar, ran } = buildImage("run", [], "gate.ts");
      assert.equal(ran.status, 0, ran.stderr);
      const id = load(tar);
      const inspect = JSON.parse(run(["podman", "image", "inspect", id]).stdout)[0];
      assert.equal(inspect.Config.User, "65532:65532");
      assert.deepEqual(inspect.Config.Entrypoint, ["/app"]);
      // The entry becomes ready once the test copies the gate file in; it listens on a port from the kernel.
      await inContainer(id, [], ["--ready", "manual", "--", "/tmp/gate"], async (container, logs) => {
        assert.ok(await eventually(() => logs().includes("waiting for the gate"), 30_000), logs());
        const early = run([...ENGINE, "exec", container, "/app", "--status"]);
        assert.equal(early.status, 3, `before it is ready: ${early.stdout}${early.stderr}`);
        assert.match(early.stdout, /app: not running/);
        const gate = join(dir.dir, "gate");
        writeFileSync(gate, "");
        const copied = run(["podman", "cp", gate, `${container}:/tmp/gate`]);
        assert.equal(copied.status, 0, copied.stderr);
        let port = 0;
        assert.ok(
          await eventually(() => (port = Number(/listening on (\d+)/.exec(logs())?.[1] ?? 0)) > 0, 30_000),
          logs(),
        );
        assert.match(await (await fetch(`http://127.0.0.1:${port}/`)).text(), /^Hello from PID \d+/);
        let probe = run([...ENGINE, "exec", container, "/app", "--status"]);
        assert.ok(
          await eventually(
            () => (probe = run([...ENGINE, "exec", container, "/app", "--status"])).status === 0,
            10_000,
          ),
          probe.stdout + probe.stderr,
        );
        assert.match(probe.stdout, /app: running \(pid \d+\)/);
        const top = run(["podman", "top", container, "user", "args"]).stdout.trim().split("\n").slice(1);
        assert.ok(top.length >= 2 && top.every((l) => l.startsWith("nonroot")), top.join("\n"));
        // -t 3: podman would SIGKILL after 3 s, which would read as exit 137.
        const stop = run([...ENGINE, "stop", "-t", "3", container]);
        assert.equal(stop.status, 0, stop.stderr);
        assert.equal(run(["podman", "inspect", "--format", "{{.State.ExitCode}}", container]).stdout.trim(), "0");
        assert.match(logs(), /SIGTERM received: shutting down/);
        assert.match(logs(), /^shutdown hook ran$/m);
      });
    },
  );

  test(
    "examples/kubernetes.yaml's args under --cpus 1 --memory 512m: --workers auto runs 1 worker, --max-memory 80% is 410 MB, --status says why, --metrics passes promtool, /ready",
    SLOW,
    async () => {
      const { tar, ran } = buildImage("cpus");
      assert.equal(ran.status, 0, ran.stderr);
      const id = load(tar);
      // The manifest's args, with ports from the OS (the test shares the host's network).
      const manifest = parse(readFileSync(join(ROOT, "examples", "kubernetes.yaml"), "utf8"));
      const args = (manifest.spec.template.spec.containers[0].args as string[]).map((a, i, all) =>
        all[i - 1] === "--metrics" ? "127.0.0.1:0" : all[i - 1] === "--" ? "0" : a
      );
      assert.ok(args.includes("auto") && args.includes("--metrics"), args.join(" "));
      // As the manifest has it: a read-only root, a tmpfs on /tmp (podman's --read-only mounts one).
      await inContainer(id, ["--cpus", "1", "--memory", "512m", "--read-only"], args, async (container, logs) => {
        assert.ok(await eventually(() => /ready \(pid \d+, 1 worker\)/.test(logs()), 30_000), logs());
        const status = run([...ENGINE, "exec", container, "/app", "--status"]);
        assert.equal(status.status, 0, status.stderr);
        assert.match(status.stdout, /^ {2}worker\[1\] pid \d+/m);
        assert.doesNotMatch(status.stdout, /worker\[2\]/);
        assert.match(
          status.stdout,
          /--max-memory 410 MB: 80% of cgroup v[12] memory(\.limit_in_bytes|\.max) 536870912 at /,
        );
        assert.match(status.stdout, /--workers auto: 1 worker \(cgroup v[12] CPU limit at \S+: \S+ 100000.* = 1 CPU\)/);
        const url = /metrics on (http:\/\/[^\s"]+)/.exec(logs())?.[1];
        assert.ok(url, logs());
        const text = await (await fetch(url)).text();
        assert.match(text, /^daemonic_workers\{name="app"\} 1$/m);
        assert.match(text, /^daemonic_worker_ready\{name="app",worker="1"\} 1$/m);
        assert.match(
          text,
          /^daemonic_process_resident_memory_bytes\{name="app",process="worker",worker="1"\} [1-9]\d*$/m,
        );
        const promtool = run(["promtool", "check", "metrics"], { input: text });
        assert.equal(promtool.status, 0, promtool.stdout + promtool.stderr);
        assert.equal((await fetch(url.replace(/metrics$/, "ready"))).status, 200);
        assert.ok(
          logs().trim().split("\n").every((line) => typeof JSON.parse(line) === "object"),
          `--log-format json --log-timestamps: every line JSON:\n${logs()}`,
        );
        const stop = run([...ENGINE, "stop", "-t", "5", container]);
        assert.equal(stop.status, 0, stop.stderr);
        assert.equal(run(["podman", "inspect", "--format", "{{.State.ExitCode}}", container]).stdout.trim(), "0");
        assert.match(logs(), /master: SIGQUIT: graceful stop/);
        assert.match(logs(), /"message":"shutdown hook ran"/);
      });
    },
  );

  test(
    "an entry whose event loop is blocked: init kills it 2 s after its --timeout, long before podman's -t 30",
    SLOW,
    async () => {
      const { tar, ran } = buildImage("stall", [], "stall.ts");
      assert.equal(ran.status, 0, ran.stderr);
      const id = load(tar);
      await inContainer(id, [], ["--timeout", "1", "--", "0"], async (container, logs) => {
        let port = 0;
        assert.ok(
          await eventually(() => (port = Number(/listening on (\d+)/.exec(logs())?.[1] ?? 0)) > 0, 30_000),
          logs(),
        );
        const init = Number(run(["podman", "inspect", "--format", "{{.State.Pid}}", container]).stdout.trim());
        const entry = childrenOf(init)[0];
        const cpuTicks = () => Number(readOr(`/proc/${entry}/stat`).split(") ")[1]?.split(" ")[11] ?? 0);
        const before = cpuTicks();
        fetch(`http://127.0.0.1:${port}/stall`).catch(() => {}); // never answered: the loop spins
        assert.ok(await eventually(() => cpuTicks() > before + 50, 30_000), "the entry's loop never started spinning");
        const stop = run([...ENGINE, "stop", "-t", "30", container], { timeout: 60_000 });
        assert.equal(stop.status, 0, stop.stderr);
        assert.equal(
          run(["podman", "inspect", "--format", "{{.State.ExitCode}}", container]).stdout.trim(),
          "137",
          "killed by init, not by podman after 30 s",
        );
        assert.match(logs(), /init: still stopping 3 s after the stop signal \(--timeout 1\): killing it/);
      });
    },
  );

  test(
    "--target linux-arm64: an arm64 image of Debian's libc6:arm64 libraries; podman loads it as arm64 and runs it (qemu through binfmt_misc): it answers, the probe says 0, podman stop runs the hook",
    SLOW,
    async () => {
      const { tar, ran } = buildImage("arm64", ["--target", "linux-arm64"]);
      assert.equal(ran.status, 0, ran.stderr);
      const id = load(tar);
      assert.equal(run(["podman", "image", "inspect", "--format", "{{.Architecture}}", id]).stdout.trim(), "arm64");
      const listed = layerListing(tar, "-t");
      assert.match(listed, /^lib\/aarch64-linux-gnu\/libc\.so\.6$/m);
      assert.match(listed, /^lib\/ld-linux-aarch64\.so\.1$/m);
      const registry = "/proc/sys/fs/binfmt_misc/qemu-aarch64";
      const registered = existsSync(registry), mounted = existsSync("/proc/sys/fs/binfmt_misc/register");
      setup("binfmt"); // qemu-aarch64 registered with F: the kernel runs the container's arm64 binaries with it
      try {
        await inContainer(id, [], ["--", "0"], async (container, logs) => {
          let port = 0;
          assert.ok(
            await eventually(() => (port = Number(/listening on (\d+)/.exec(logs())?.[1] ?? 0)) > 0, 120_000),
            logs(),
          );
          assert.match(await (await fetch(`http://127.0.0.1:${port}/`)).text(), /^Hello from PID \d+/);
          const probe = run([...ENGINE, "exec", container, "/app", "--status"], { timeout: 60_000 });
          assert.equal(probe.status, 0, probe.stdout + probe.stderr);
          const stop = run([...ENGINE, "stop", "-t", "20", container], { timeout: 60_000 });
          assert.equal(stop.status, 0, stop.stderr);
          assert.equal(run(["podman", "inspect", "--format", "{{.State.ExitCode}}", container]).stdout.trim(), "0");
          assert.match(logs(), /^shutdown hook ran$/m);
        });
      } finally {
        if (!registered) writeFileSync(registry, "-1"); // leave binfmt_misc as it was
        if (!mounted) run(["umount", "/proc/sys/fs/binfmt_misc"]);
      }
    },
  );
});

describe("daemonic build --image: what is refused", () => {
  test("a target's libraries not at hand: one line naming the package, OS_FILE (72)", () => {
    const empty = mkdtempSync(join(tmpdir(), "daemonic-nolibs-"));
    try {
      const noLibc = { ...imagePlatform(), searched: [empty] };
      assert.throws(
        () => checkLibraries(noLibc),
        (e) =>
          e instanceof DaemonError && e.exitCode === 72 &&
          /libc\.so\.6 is not in .*daemonic-nolibs.*: install Debian's libc6$/.test(e.message),
      );
      assert.throws(
        () => librariesOf("/bin/true", noLibc),
        (e) => e instanceof DaemonError && e.exitCode === 72 && /ld-linux-[\w.-]+ is not in/.test(e.message),
      );
      const noArm = { ...imagePlatform("linux-arm64"), searched: [empty] };
      assert.throws(
        () => checkLibraries(noArm),
        (e) =>
          e instanceof DaemonError &&
          /install Debian's libc6:arm64 \(dpkg --add-architecture arm64, apt-get update, apt-get install libc6:arm64\)$/
            .test(e.message),
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test("bad --image, --image-user or a musl target: exit 64, one line, no file", () => {
    const out = join(dir.dir, "refused.tar");
    for (
      const [args, message] of [
        [["--image", "Bad:1"], /Invalid --image 'Bad:1': give NAME:TAG in lower case/],
        [["--image", "a:1", "--image-user", "nobody"], /Invalid --image-user 'nobody': give a numeric UID/],
        [["--image-user", "1000"], /Invalid --image-user: it goes with --image/],
        [["--image", "a:1", "--target", "linux-x64-musl"], /Invalid --target linux-x64-musl with --image/],
      ] as const
    ) {
      const r = run([BUN, CLI, "build", join(FIXTURES, "server.ts"), ...args, "-o", out]);
      assert.equal(r.status, 64, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.throws(() => statSync(out));
    }
  });
});
