/**
 * The calls that give a SO_REUSEPORT group a BPF program and take a listener out of it. bpf(2) has no
 * wrapper in glibc 2.17, so it goes through syscall(2).
 *
 * @module
 */
import { SystemCallError } from "./errors.ts";
import type { RawLibc, ReuseportCalls } from "./types.ts";
import { host } from "./_host.ts";

const ARM = host.arm64;
const SYS_BPF = ARM ? 280 : 321, BPF_PROG_LOAD = 5;
const SOL_SOCKET = 1, SO_ATTACH_REUSEPORT_EBPF = 52, SO_DOMAIN = 39, SHUT_RD = 0;
const SOCK_STREAM = 1, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000, F_SETFD = 2, FD_CLOEXEC = 1;

/** Builds {@linkcode ReuseportCalls} on a runtime binding. */
export function reuseportCalls(
  raw: RawLibc,
  check: (result: number | bigint, syscall: string) => number,
  has: (name: string) => boolean,
): ReuseportCalls {
  return {
    bpfProgramLoad(program) {
      // DAEMONIC_FFI_WITHOUT=bpf: as on a kernel without it, to measure and test what the program buys.
      if (!has("bpf")) throw new SystemCallError("bpf(BPF_PROG_LOAD)", 38, "Function not implemented");
      const license = new TextEncoder().encode(program.license + "\0");
      const attr = new Uint8Array(128); // union bpf_attr (uapi/linux/bpf.h), zero past the fields set here
      const view = new DataView(attr.buffer);
      view.setUint32(0, program.type, true); // prog_type
      view.setUint32(4, program.instructions.length / 8, true); // insn_cnt
      view.setBigUint64(8, raw.address(program.instructions), true); // insns
      view.setBigUint64(16, raw.address(license), true); // license
      view.setUint32(68, program.expectedAttachType, true); // expected_attach_type
      return check(raw.fn.syscall(SYS_BPF, BPF_PROG_LOAD, raw.address(attr), attr.length, 0), "bpf(BPF_PROG_LOAD)");
    },
    attachReuseportProgram(socket, program) {
      const value = new Uint8Array(new Int32Array([program]).buffer);
      check(
        raw.fn.setsockopt(socket, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, value, 4),
        "setsockopt(SO_ATTACH_REUSEPORT_EBPF)",
      );
    },
    stopListening(socket) {
      // The placeholder dup2'd over the fd drops the runtime's epoll registration: Bun would spin on the dead
      // listener's hang-up, Deno's accept loop would fail. The server closes the placeholder when it stops.
      const domain = new Int32Array(1), length = new Uint32Array([4]);
      check(
        raw.fn.getsockopt(socket, SOL_SOCKET, SO_DOMAIN, new Uint8Array(domain.buffer), new Uint8Array(length.buffer)),
        "getsockopt(SO_DOMAIN)",
      );
      check(raw.fn.shutdown(socket, SHUT_RD), "shutdown");
      const placeholder = check(raw.fn.socket(domain[0], SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), "socket");
      try {
        check(raw.fn.dup2(placeholder, socket), "dup2");
        check(raw.fn.fcntl(socket, F_SETFD, FD_CLOEXEC), "fcntl(F_SETFD)");
      } finally {
        raw.fn.close(placeholder);
      }
    },
  };
}
