/**
 * Keeps a port to one daemon. Workers bind with SO_REUSEPORT, which would let any other process of the same
 * user join the port and take part of its traffic; so before a worker binds, it looks up who listens on the
 * port already (the kernel's sock_diag, as `ss -lt` asks) and refuses with EADDRINUSE when a listener belongs to no
 * process of its own daemon: its master's workers, or during a binary upgrade (USR2) the old master's.
 *
 * @module
 */
import { host as system } from "../../ffi/_host.ts";
import { libc } from "../../ffi/mod.ts";

interface Listener {
  address: string;
  inode: string;
}

/** An address as sock_diag gives it (4 or 16 bytes, network order), as text. */
function addressOf(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const words = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] << 8) | bytes[2 * i + 1]).toString(16));
  return canonical(words.join(":"));
}

/** One spelling per address: IPv6 compressed, IPv4-mapped IPv6 as plain IPv4. */
/** 4 or 6 for an IP address of that version, 0 for anything else (a host name), as node:net's isIP. */
const isIP = (address: string): 0 | 4 | 6 =>
  /^(\d{1,3}\.){3}\d{1,3}$/.test(address) ? 4 : /^[\da-f:]*:[\da-f:.]*(%\w+)?$/i.test(address) ? 6 : 0;

function canonical(address: string): string {
  if (isIP(address) !== 6) return address;
  const text = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(text);
  if (!mapped) return text;
  const [hi, lo] = [parseInt(mapped[1], 16), parseInt(mapped[2], 16)];
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join(".");
}

/** The TCP sockets listening on `port`. */
function listenersOn(port: number): Listener[] {
  return libc.tcpListeners().filter((l) => l.port === port).map((l) => ({
    address: addressOf(l.address),
    inode: String(l.inode),
  }));
}

const WILDCARDS = new Set(["0.0.0.0", "::"]);

/** Whether binding `host` conflicts with a listener on `address` (same address, or either is a wildcard). */
function overlaps(host: string | undefined, address: string): boolean {
  if (!host || !isIP(host)) return true; // a name or no host may bind any address
  const mine = canonical(host);
  return mine === address || WILDCARDS.has(mine) || WILDCARDS.has(address);
}

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  try {
    for (const task of system.readDir(`/proc/${pid}/task`)) {
      const text = system.readText(`/proc/${pid}/task/${task}/children`).trim();
      if (text) children.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return children;
}

function parentOf(pid: number): number {
  try {
    const stat = system.readText(`/proc/${pid}/stat`);
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return 0;
  }
}

function exeOf(pid: number): string {
  try {
    return system.readLink(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, ""); // an upgrade replaced the binary
  } catch {
    return "";
  }
}

/** The master's processes, and when it is a USR2 successor (its parent runs the same executable), the old
 * master's too: children and grandchildren. */
function familyOf(masterPid: number): number[] {
  const roots = [masterPid];
  const parent = parentOf(masterPid);
  if (parent > 1 && exeOf(parent) === exeOf(masterPid)) roots.push(parent);
  const children = roots.flatMap(childrenOf);
  return [...roots, ...children, ...children.flatMap(childrenOf)];
}

/** The inodes of the sockets `pid` holds (its fds that are `socket:[N]`); empty when it cannot be read. */
export function socketsOf(pid: number): Set<string> {
  const inodes = new Set<string>();
  try {
    for (const fd of system.readDir(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(system.readLink(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // gone, or not ours to read
  }
  return inodes;
}

/** The TCP addresses (`127.0.0.1:8080`, `[::]:8080`) that `pid` and its children and grandchildren listen on. */
export function listeningAddresses(pid: number): string[] {
  const children = childrenOf(pid);
  const inodes = new Set([pid, ...children, ...children.flatMap(childrenOf)].flatMap((p) => [...socketsOf(p)]));
  const held = libc.tcpListeners().filter((l) => inodes.has(String(l.inode)));
  const text = held.map((l) => addressOf(l.address)).map((a, i) => `${isIP(a) === 6 ? `[${a}]` : a}:${held[i].port}`);
  return [...new Set(text)];
}

/** The process holding socket `inode`, and its parent, for the message; searched only on a refusal. */
function ownerOf(inode: string): string {
  for (const name of system.readDir("/proc")) {
    if (!/^\d+$/.test(name) || !socketsOf(Number(name)).has(inode)) continue;
    const parent = parentOf(Number(name));
    return parent > 1 ? `pid ${name} (child of pid ${parent})` : `pid ${name}`;
  }
  return "another process";
}

function foreignListener(port: number, host: string | undefined, masterPid: number): string | undefined {
  const listeners = listenersOn(port).filter((l) => overlaps(host, l.address));
  if (!listeners.length) return undefined;
  const ours = new Set(familyOf(masterPid).flatMap((pid) => [...socketsOf(pid)]));
  return listeners.find((l) => !ours.has(l.inode))?.inode;
}

/**
 * Throws an EADDRINUSE error, as the runtime's own listen would, when a process outside the daemon of
 * `masterPid` listens on `port` at an address `host` overlaps. Port 0 (any free port) always passes.
 */
export function claimPort(port: number, host: string | undefined, masterPid: number): void {
  if (!Number.isInteger(port) || port <= 0) return;
  let inode = foreignListener(port, host, masterPid);
  // A sibling that just closed its listener may still show in the table a moment after its fd went.
  for (let retry = 0; inode && retry < 3; retry++) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    inode = foreignListener(port, host, masterPid);
  }
  if (inode) throw addressInUse(port, host, ownerOf(inode));
}

/**
 * The EADDRINUSE error of a process that could not listen on `port` (it has no SO_REUSEPORT to share it, or
 * {@linkcode claimPort} refused): who serves the port, and the fix, in one line without a stack.
 */
export function portTaken(port: number, host: string | undefined): Error {
  const theirs = listenersOn(port).filter((l) => overlaps(host, l.address) && !socketsOf(system.pid()).has(l.inode));
  return addressInUse(port, host, theirs.length ? ownerOf(theirs[0].inode) : "another process");
}

function addressInUse(port: number, host: string | undefined, owner: string): Error {
  const shown = host ?? "::";
  const where = `${isIP(shown) === 6 ? `[${shown}]` : shown}:${port}`;
  const message =
    `listen EADDRINUSE: address already in use ${where}: ${owner} serves port ${port}: stop it, or give this daemon ` +
    `another port`;
  const err = Object.assign(new Error(message), {
    code: "EADDRINUSE",
    errno: -98,
    syscall: "listen",
    port,
    address: host,
  });
  err.stack = `Error: ${message}`; // the user's problem, not daemonic's: one line without a stack
  return err;
}
