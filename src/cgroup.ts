/**
 * The limits a container platform sets on this process, read from its cgroups: the CPU quota (v2 `cpu.max`,
 * v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) for `--workers auto`, and the memory limit (v2 `memory.max`,
 * v1 `memory.limit_in_bytes`) for `--max-memory 80%`. The tightest limit up the visible hierarchy counts (a
 * pod's limit sits on an ancestor of the container's cgroup); a v1 hierarchy mounted at a non-root path (a
 * container's own cgroup bind-mounted) is found through mountinfo's root field. Every path is read under
 * `root`, so tests run the reader on fixture hierarchies.
 *
 * @module
 */
import { host, resolvePath } from "../ffi/_host.ts";

// Paths below an absolute root, as node:path join joins them (this module loads before every role: no node:).
const join = (...parts: string[]): string => resolvePath("/", parts.join("/"));

/** A decision and the words `--status` says it with. */
export interface Decided {
  value: number;
  /** How it was decided, e.g. `cgroup v2 cpu.max "150000 100000" at /sys/fs/cgroup/app`. */
  how: string;
}

interface Hierarchy {
  version: 1 | 2;
  /** Where it is mounted (under `root`), and the path of this process's cgroup below that. */
  mountPoint: string;
  cgroup: string;
}

function read(path: string): string | undefined {
  try {
    return host.readText(path).trim();
  } catch {
    return undefined;
  }
}

/** mountinfo escapes spaces and the like as \\ooo. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

/** This process's cgroup path in the hierarchy of `controller` (v1), or of the unified hierarchy (v2). */
function hierarchies(root: string, controller: string): Hierarchy[] {
  const cgroups = (read(join(root, "proc/self/cgroup")) ?? "").split("\n").map((l) => /^(\d+):([^:]*):(.*)$/.exec(l))
    .filter((m) => m !== null);
  const found: Hierarchy[] = [];
  for (const line of (read(join(root, "proc/self/mountinfo")) ?? "").split("\n")) {
    const [mountFields, fsFields] = line.split(" - ");
    if (!fsFields) continue;
    const [, , , mountRoot, mountPoint] = mountFields.split(" ").map(unescape);
    const [fsType, , superOptions = ""] = fsFields.split(" ");
    const v1 = fsType === "cgroup" && superOptions.split(",").includes(controller);
    if (!v1 && fsType !== "cgroup2") continue;
    const path = cgroups.find((m) => v1 ? m[2].split(",").includes(controller) : m[1] === "0" && m[2] === "")?.[3];
    if (path === undefined) continue;
    // The mount shows the hierarchy from mountRoot down: a container sees its own cgroup as the mount's top.
    const below = mountRoot === "/"
      ? path
      : path === mountRoot || path.startsWith(`${mountRoot}/`)
      ? path.slice(mountRoot.length)
      : "/";
    found.push({ version: v1 ? 1 : 2, mountPoint, cgroup: below || "/" });
  }
  return found;
}

/** The directories from this process's cgroup up to the mount's top, each with its path as shown. */
function upwards(root: string, h: Hierarchy): { dir: string; shown: string }[] {
  const dirs = [];
  for (let path = h.cgroup;; path = path.slice(0, path.lastIndexOf("/")) || "/") {
    const shown = join(h.mountPoint, path).replace(/(.)\/$/, "$1");
    dirs.push({ dir: join(root, shown), shown });
    if (path === "/") return dirs;
  }
}

/** The tightest of `limit` over every directory up every hierarchy of `controller`. */
function tightest(
  root: string,
  controller: string,
  limit: (dir: string, version: 1 | 2) => Decided | undefined,
  shown: (d: Decided, at: string, version: 1 | 2) => string,
): Decided | undefined {
  let best: Decided | undefined;
  for (const h of hierarchies(root, controller)) {
    for (const { dir, shown: at } of upwards(root, h)) {
      const found = limit(dir, h.version);
      if (found && (!best || found.value < best.value)) best = { value: found.value, how: shown(found, at, h.version) };
    }
  }
  return best;
}

function cpuLimit(dir: string, version: 1 | 2): Decided | undefined {
  const [quota, period] = version === 2
    ? (read(join(dir, "cpu.max")) ?? "max").split(/\s+/)
    : [read(join(dir, "cpu.cfs_quota_us")) ?? "-1", read(join(dir, "cpu.cfs_period_us")) ?? "0"];
  if (!/^\d+$/.test(quota) || !(Number(period) > 0)) return undefined;
  return {
    value: Number(quota) / Number(period),
    how: version === 2 ? `cpu.max "${quota} ${period}"` : `cpu.cfs_quota_us/cpu.cfs_period_us ${quota}/${period}`,
  };
}

/** The CPUs this process may run on, from /proc/self/status (`Cpus_allowed_list: 0-3,6`). */
function affinity(root: string): Decided | undefined {
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(read(join(root, "proc/self/status")) ?? "")?.[1];
  if (!list) return undefined;
  const count = list.split(",").reduce((n, range) => {
    const [from, to = from] = range.split("-").map(Number);
    return n + to - from + 1;
  }, 0);
  return count > 0 ? { value: count, how: `no cgroup CPU limit; the affinity mask allows CPUs ${list}` } : undefined;
}

/**
 * How many workers `--workers auto` starts: the cgroup CPU limit rounded up (at least 1), else the CPUs of
 * the affinity mask, else the runtime's count.
 *
 * @example
 * ```ts
 * import { cpuWorkers } from "./cgroup.ts";
 * const { value, how } = cpuWorkers();
 * console.log(value >= 1, how.length > 0); // true true
 * ```
 */
export function cpuWorkers(root = "/", fallback = navigator.hardwareConcurrency || 1): Decided {
  const quota = tightest(
    root,
    "cpu",
    cpuLimit,
    (d, at, v) => `cgroup v${v} CPU limit at ${at}: ${d.how} = ${+d.value.toFixed(3)} CPU${d.value === 1 ? "" : "s"}`,
  );
  if (quota) return { value: Math.max(1, Math.ceil(quota.value)), how: quota.how };
  return affinity(root) ??
    { value: fallback, how: "no cgroup CPU limit or affinity mask found: the runtime's CPU count" };
}

/** Above this a v1 memory.limit_in_bytes means "no limit" (the kernel writes the page-rounded LONG_MAX). */
const UNLIMITED = 2 ** 60;

function memoryLimit(dir: string, version: 1 | 2): Decided | undefined {
  const text = read(join(dir, version === 2 ? "memory.max" : "memory.limit_in_bytes"));
  if (!text || !/^\d+$/.test(text) || Number(text) >= UNLIMITED) return undefined;
  return { value: Number(text), how: `${version === 2 ? "memory.max" : "memory.limit_in_bytes"} ${text}` };
}

/**
 * The cgroup memory limit of this process in bytes (the tightest up the hierarchy), or `undefined` when
 * none is set.
 *
 * @example
 * ```ts
 * import { cgroupMemoryLimit } from "./cgroup.ts";
 * const limit = cgroupMemoryLimit();
 * console.log(limit === undefined || limit.value > 0); // true
 * ```
 */
export function cgroupMemoryLimit(root = "/"): Decided | undefined {
  return tightest(root, "memory", memoryLimit, (d, at, v) => `cgroup v${v} ${d.how} at ${at}`);
}
