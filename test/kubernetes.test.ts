/**
 * examples/kubernetes.yaml, checked offline: the Deployment is valid against Kubernetes's schemas
 * (kubernetes-models), and the fields the README's Kubernetes section names agree with what the binary
 * does: its args parse as the runner's flags, the probes run the image's entrypoint with --status, the
 * grace period outlasts the preStop drain and --timeout, --workers auto meets the CPU limit (as the kubelet
 * writes it into cpu.max), and the scrape annotation names the --metrics port.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { parse } from "yaml";
import { cgroupMemoryLimit, cpuWorkers } from "../src/cgroup.ts";
import { IMAGE_USER } from "../src/build/image.ts";
import { parseRunnerArgs } from "../src/cli/options.ts";
import { ROOT } from "./_helpers.ts";

/** The manifest's Deployment, and its one container. */
function exampleManifest() {
  const doc = parse(readFileSync(join(ROOT, "examples", "kubernetes.yaml"), "utf8"));
  return { doc, pod: doc.spec.template.spec, container: doc.spec.template.spec.containers[0] };
}

describe("examples/kubernetes.yaml", () => {
  const { doc, pod, container } = exampleManifest();

  test("is a valid apps/v1 Deployment (Kubernetes's schemas, offline); a wrong type in it is caught", () => {
    assert.doesNotThrow(() => new Deployment(doc).validate());
    const broken = structuredClone(doc);
    broken.spec.template.spec.terminationGracePeriodSeconds = "30s";
    assert.throws(() => new Deployment(broken).validate(), /terminationGracePeriodSeconds must be integer/);
  });

  test("its args are the runner's flags: --workers auto, --metrics on the annotated port, --timeout inside the grace period", () => {
    // A percentage needs the pod's memory limit, which this host may not have: parsed as a size here (see below).
    const opts = parseRunnerArgs(container.args.map((a: string) => a === "80%" ? "410M" : a), {
      name: "app",
      baseDir: "/",
    });
    assert.equal(opts.action, "foreground");
    assert.ok(opts.workersAuto, "--workers auto");
    assert.ok(
      container.args.includes("80%") && container.resources.limits.memory,
      "--max-memory 80% of a memory limit",
    );
    const annotations = doc.spec.template.metadata.annotations;
    assert.equal(annotations["prometheus.io/scrape"], "true");
    assert.equal(annotations["prometheus.io/path"], "/metrics");
    assert.equal(opts.metrics, annotations["prometheus.io/port"]);
    assert.ok(container.ports.some((p: { containerPort: number }) => String(p.containerPort) === opts.metrics));
    const drain = container.lifecycle.preStop.sleep.seconds;
    assert.ok(
      pod.terminationGracePeriodSeconds >= drain + opts.timeout,
      `grace ${pod.terminationGracePeriodSeconds} s < preStop ${drain} s + --timeout ${opts.timeout} s`,
    );
  });

  test("the probes run the image's entrypoint with --status; it runs as the image's user", () => {
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      assert.deepEqual(container[probe].exec.command, ["/app", "--status"], probe);
    }
    assert.equal(`${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`, IMAGE_USER);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    // A read-only root keeps a writable /tmp, where a non-root --status finds the registry.
    const tmp = container.volumeMounts.find((m: { mountPath: string }) => m.mountPath === "/tmp");
    assert.ok(
      tmp && pod.volumes.some((v: { name: string; emptyDir?: object }) => v.name === tmp.name && v.emptyDir),
      "an emptyDir on /tmp",
    );
  });

  test("its limits, as the kubelet writes them (cpu.max, memory.max), give --workers auto that many workers and 80% of the memory", () => {
    const cpus = Number(container.resources.limits.cpu);
    assert.ok(
      Number.isInteger(cpus) && cpus >= 1,
      "a whole number of CPUs: a fraction is rounded up, oversubscribing the quota",
    );
    const root = mkdtempSync(join(tmpdir(), "daemonic-k8s-"));
    try {
      const pod = "sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice";
      mkdirSync(join(root, "proc/self"), { recursive: true });
      mkdirSync(join(root, pod, "cri-containerd-1.scope"), { recursive: true });
      writeFileSync(join(root, "proc/self/cgroup"), "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-1.scope\n");
      writeFileSync(join(root, "proc/self/mountinfo"), "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
      writeFileSync(join(root, pod, "cri-containerd-1.scope", "cpu.max"), `${cpus * 100000} 100000\n`);
      writeFileSync(join(root, pod, "cpu.max"), `${cpus * 100000} 100000\n`);
      assert.equal(cpuWorkers(root).value, cpus);
      const mebibytes = Number(/^(\d+)Mi$/.exec(container.resources.limits.memory)?.[1]);
      writeFileSync(join(root, pod, "memory.max"), `${mebibytes * 1048576}\n`);
      assert.equal(cgroupMemoryLimit(root)?.value, mebibytes * 1048576);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
