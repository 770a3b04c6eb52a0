/**
 * Lossless SO_REUSEPORT handover without `net.ipv4.tcp_migrate_req`: on Linux 5.14 and later, a reuseport
 * group with a BPF_PROG_TYPE_SK_REUSEPORT program of attach type BPF_SK_REUSEPORT_SELECT_OR_MIGRATE moves
 * the connections queued on a closing listener to another listener of the group instead of resetting them.
 * The program only returns SK_PASS: the kernel keeps its own selection and picks the migration target.
 * Loading needs CAP_BPF or CAP_SYS_ADMIN; without it the sysctl, or nothing, decides.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { type Libc, libc as systemLibc } from "../../ffi/mod.ts";
import { runnerLog } from "../log/lines.ts";

const BPF_PROG_TYPE_SK_REUSEPORT = 21, BPF_SK_REUSEPORT_SELECT_OR_MIGRATE = 40;
// struct bpf_insn { u8 code; u8 dst:4, src:4; s16 off; s32 imm }: r0 = 1 (SK_PASS); exit
const PASS_PROGRAM = new Uint8Array([0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);

/** How a port's queued connections fare when a worker retires: migrated by our program, by the sysctl, or not. */
export type MigrationMode = "bpf" | "sysctl" | "none";

/** What `--status` says about each mode. */
export const MIGRATION_STATUS: Record<MigrationMode, string> = {
  bpf: "lossless (queued connections migrate: reuseport BPF program)",
  sysctl: "lossless (queued connections migrate: net.ipv4.tcp_migrate_req = 1)",
  none: "lossy (queued connections at a retiring worker are reset: run as root, or set net.ipv4.tcp_migrate_req = 1)",
};

let program: number | undefined;

/** Loads the program once per process; `undefined` (and why) where the kernel or our privileges refuse it. */
function loadProgram(libc: Libc): { fd?: number; error?: string } {
  if (program !== undefined) return { fd: program };
  try {
    program = libc.bpfProgramLoad({
      type: BPF_PROG_TYPE_SK_REUSEPORT,
      expectedAttachType: BPF_SK_REUSEPORT_SELECT_OR_MIGRATE,
      instructions: PASS_PROGRAM,
      license: "GPL",
    });
    return { fd: program };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function sysctlMigrates(): boolean {
  try {
    return host.readText("/proc/sys/net/ipv4/tcp_migrate_req").trim() === "1";
  } catch {
    return false; // before Linux 5.14: no migration at all
  }
}

/** What a retiring worker's queued connections will get on this machine, and why when it is `none`. */
export function migrationMode(libc: Libc = systemLibc): { mode: MigrationMode; reason?: string } {
  const { error } = loadProgram(libc);
  if (!error) return { mode: "bpf" };
  if (sysctlMigrates()) return { mode: "sysctl" };
  return {
    mode: "none",
    reason: `cannot load the reuseport migration program (${error}; it needs Linux 5.14 and CAP_BPF or root) and ` +
      `net.ipv4.tcp_migrate_req is 0`,
  };
}

/** The listening sockets of this process. */
function listeningSockets(libc: Libc): number[] {
  return host.readDir("/proc/self/fd").map(Number).filter((fd) => {
    try {
      return fd > 2 && host.readLink(`/proc/self/fd/${fd}`).startsWith("socket:") && libc.isListening(fd);
    } catch {
      return false; // closed while we looked
    }
  });
}

/**
 * Stops every listening socket of this process from accepting, at the kernel, leaving the fds (and the
 * runtime's servers and their connections) alone: a retiring worker then gets no new connection, and the
 * ones queued move to a sibling where migration is on.
 */
export function stopListening(libc: Libc = systemLibc): void {
  for (const socket of listeningSockets(libc)) {
    try {
      libc.stopListening(socket);
    } catch {
      // Already closed.
    }
  }
}

/**
 * Attaches the program to every listening socket of this process (each sets it for its whole reuseport
 * group; attaching again is harmless). Returns how many took it, or `null` when the program cannot load.
 */
export function attachMigration(libc: Libc = systemLibc): number | null {
  const { fd } = loadProgram(libc);
  if (fd === undefined) return null;
  let attached = 0;
  for (const socket of listeningSockets(libc)) {
    try {
      libc.attachReuseportProgram(socket, fd);
      attached++;
    } catch {
      // Closed since, or not in a reuseport group (a Unix socket): nothing to migrate there.
    }
  }
  return attached;
}

/** The master's {@linkcode migrationMode}, with one warning line in its log when restarts would be lossy. */
export function migrationLogged(libc: Libc = systemLibc): MigrationMode {
  const { mode, reason } = migrationMode(libc);
  if (reason) {
    runnerLog(
      `master: ${reason}: a rolling restart can reset connections queued at a retiring worker: run as root, or set ` +
        `net.ipv4.tcp_migrate_req to 1 (sysctl -w net.ipv4.tcp_migrate_req=1)`,
    );
  }
  return mode;
}
