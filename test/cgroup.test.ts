/** The cgroup reader behind `--workers auto` and `--max-memory PERCENT%`, on fixture hierarchies (v1, v2,
 * nested limits, a v1 hierarchy mounted at a non-root path, no limit), and the options built on it. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { cgroupMemoryLimit, cpuWorkers } from "../src/cgroup.ts";
import { DaemonError } from "../src/errors.ts";
import { parseRunnerArgs } from "../src/cli/options.ts";

/** A fake root: `files` maps paths below it to contents. */
function fixture(files: Record<string, string>, body: (root: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), "daemonic-cgroup-"));
  try {
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    body(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
const V1_MOUNTS = (root = "/") =>
  `32 31 0:29 ${root} /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n` +
  `35 31 0:32 ${root} /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n`;
const AFFINITY = "Name:\tx\nCpus_allowed_list:\t0-2,5\n";

describe("cpuWorkers() and cgroupMemoryLimit() on fixture hierarchies", () => {
  test("cgroup v2: cpu.max 150000/100000 rounds up to 2; memory.max is the limit", () =>
    fixture({
      "proc/self/cgroup": "0::/kubepods/pod1/ctr\n",
      "proc/self/mountinfo": V2_MOUNT,
      "proc/self/status": AFFINITY,
      "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max": "150000 100000\n",
      "sys/fs/cgroup/kubepods/pod1/ctr/memory.max": "268435456\n",
    }, (root) => {
      const cpu = cpuWorkers(root);
      assert.equal(cpu.value, 2);
      assert.match(
        cpu.how,
        /cgroup v2 CPU limit at \/sys\/fs\/cgroup\/kubepods\/pod1\/ctr: cpu.max "150000 100000" = 1.5 CPUs/,
      );
      assert.equal(cgroupMemoryLimit(root)?.value, 268435456);
    }));

  test("nested limits: a tighter ancestor wins (the pod's limit over the container's)", () =>
    fixture({
      "proc/self/cgroup": "0::/kubepods/pod1/ctr\n",
      "proc/self/mountinfo": V2_MOUNT,
      "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max": "400000 100000\n",
      "sys/fs/cgroup/kubepods/pod1/cpu.max": "50000 100000\n",
      "sys/fs/cgroup/kubepods/cpu.max": "max 100000\n",
      "sys/fs/cgroup/kubepods/pod1/ctr/memory.max": "max\n",
      "sys/fs/cgroup/kubepods/memory.max": "1073741824\n",
    }, (root) => {
      const cpu = cpuWorkers(root);
      assert.equal(cpu.value, 1, "0.5 CPU rounds up to 1");
      assert.match(cpu.how, /at \/sys\/fs\/cgroup\/kubepods\/pod1:/);
      const memory = cgroupMemoryLimit(root);
      assert.equal(memory?.value, 1073741824);
      assert.match(memory!.how, /at \/sys\/fs\/cgroup\/kubepods$/);
    }));

  test("cgroup v1: cpu.cfs_quota_us/cpu.cfs_period_us 250000/100000 is 3; memory.limit_in_bytes", () =>
    fixture({
      "proc/self/cgroup": "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n",
      "proc/self/mountinfo": V1_MOUNTS(),
      "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000\n",
      "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
      "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "536870912\n",
      "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
    }, (root) => {
      assert.equal(cpuWorkers(root).value, 3);
      assert.match(
        cpuWorkers(root).how,
        /cgroup v1 CPU limit at \/sys\/fs\/cgroup\/cpu,cpuacct\/docker\/abc: cpu.cfs_quota_us\/cpu.cfs_period_us 250000\/100000 = 2.5 CPUs/,
      );
      assert.equal(cgroupMemoryLimit(root)?.value, 536870912);
    }));

  test("cgroup v1 mounted at a non-root path (a container's own cgroup bind-mounted as the top)", () =>
    fixture({
      "proc/self/cgroup": "2:cpu,cpuacct:/machine.slice/libpod-1.scope\n4:memory:/machine.slice/libpod-1.scope\n",
      "proc/self/mountinfo": V1_MOUNTS("/machine.slice/libpod-1.scope"),
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "100000\n",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    }, (root) => {
      assert.equal(cpuWorkers(root).value, 1);
      assert.match(cpuWorkers(root).how, /at \/sys\/fs\/cgroup\/cpu,cpuacct:/);
      assert.equal(cgroupMemoryLimit(root), undefined, "no memory.limit_in_bytes file: no limit");
    }));

  test("no limit anywhere: the affinity mask's CPUs (0-2,5 is 4); no memory limit", () =>
    fixture({
      "proc/self/cgroup": "0::/user.slice\n",
      "proc/self/mountinfo": V2_MOUNT,
      "proc/self/status": AFFINITY,
      "sys/fs/cgroup/user.slice/cpu.max": "max 100000\n",
      "sys/fs/cgroup/user.slice/memory.max": "max\n",
    }, (root) => {
      const cpu = cpuWorkers(root);
      assert.equal(cpu.value, 4);
      assert.match(cpu.how, /no cgroup CPU limit; the affinity mask allows CPUs 0-2,5/);
      assert.equal(cgroupMemoryLimit(root), undefined);
    }));

  test("nothing readable at all: the runtime's count, said so", () =>
    fixture({ "empty": "" }, (root) => {
      assert.deepEqual(cpuWorkers(root, 7), {
        value: 7,
        how: "no cgroup CPU limit or affinity mask found: the runtime's CPU count",
      });
    }));
});

describe("--workers auto and --max-memory PERCENT% on the command line", () => {
  const parse = (argv: string[]) => parseRunnerArgs(argv, { name: "app", baseDir: "/srv" });

  test("--workers auto is this process's cgroup limit, with how it was decided", () => {
    const o = parse(["--daemon", "--workers", "auto"]);
    assert.deepEqual({ workers: o.workers, workersAuto: o.workersAuto }, {
      workers: cpuWorkers().value,
      workersAuto: cpuWorkers().how,
    });
    assert.ok(o.workers >= 1);
  });

  test("--max-memory 80% is 80% of the cgroup's memory limit, or refused (64) without one", () => {
    const limit = cgroupMemoryLimit();
    if (limit) {
      const o = parse(["--daemon", "--max-memory", "80%"]);
      assert.equal(o.maxMemory, Math.floor(limit.value * 0.8));
      assert.match(o.maxMemoryShare!, /^80% of cgroup v[12] memory/);
    } else {
      assert.throws(
        () => parse(["--daemon", "--max-memory", "80%"]),
        (e) => e instanceof DaemonError && e.exitCode === 64 && /sets no memory limit/.test(e.message),
      );
    }
    for (const bad of ["0%", "101%", "%", "80 %"]) {
      assert.throws(
        () => parse(["--daemon", "--max-memory", bad]),
        (e) => e instanceof DaemonError && e.exitCode === 64 && /Invalid --max-memory/.test(e.message),
        bad,
      );
    }
  });
});
