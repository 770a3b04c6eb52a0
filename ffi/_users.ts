/**
 * Users, groups and capabilities: the calls of a privilege drop (`--user`), looked up through NSS as `id` does.
 *
 * @module
 */
import type { Kit, Libc } from "./types.ts";

const PR_SET_DUMPABLE = 4, PR_SET_KEEPCAPS = 8, PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_RAISE = 2;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;
const ERANGE = 34;
const encoder = new TextEncoder();
const cstr = (s: string) => encoder.encode(s + "\0");

/** getpwnam_r/getgrnam_r: the entry (struct passwd or group, 48 bytes at most) as a DataView, or `null`. */
function lookup({ raw, fail }: Kit, call: "getpwnam_r" | "getgrnam_r", name: string): DataView | null {
  const entry = new Uint8Array(48), result = new BigUint64Array(1);
  for (let size = 16384;; size *= 4) {
    const r = Number(raw.fn[call](cstr(name), entry, new Uint8Array(size), size, new Uint8Array(result.buffer)));
    if (r === ERANGE && size < 1 << 24) continue; // a group with many members: a bigger buffer
    if (r !== 0) fail(call, name, r);
    return result[0] === 0n ? null : new DataView(entry.buffer);
  }
}

/** The calls of a privilege drop. */
export function userCalls(kit: Kit): Partial<Libc> {
  const { f, check } = kit;
  return {
    lookupUser(name) {
      const pw = lookup(kit, "getpwnam_r", name); // struct passwd: name, passwd pointers, then uid_t, gid_t
      return pw && { uid: pw.getUint32(16, true), gid: pw.getUint32(20, true) };
    },
    lookupGroup(name) {
      const gr = lookup(kit, "getgrnam_r", name); // struct group: name, passwd pointers, then gid_t
      return gr && gr.getUint32(16, true);
    },
    setKeepCapabilities: (keep) =>
      void check(f.prctl(PR_SET_KEEPCAPS, keep ? 1 : 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)"),
    initGroups: (user, gid) => void check(f.initgroups(cstr(user), gid), "initgroups", user),
    setGid: (gid) => void check(f.setresgid(gid, gid, gid), "setresgid"),
    setUid: (uid) => void check(f.setresuid(uid, uid, uid), "setresuid"),
    setDumpable: (on) => void check(f.prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)"),
    keepCapabilities(caps) {
      const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]); // struct __user_cap_header_struct, pid 0: us
      const data = new Uint32Array(6); // two struct __user_cap_data_struct: effective, permitted, inheritable
      for (const cap of caps) for (const field of [0, 1, 2]) data[(cap >> 5) * 3 + field] |= 1 << (cap & 31);
      check(f.capset(new Uint8Array(header.buffer), new Uint8Array(data.buffer)), "capset");
      for (const cap of caps) {
        check(f.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), "prctl(PR_CAP_AMBIENT_RAISE)");
      }
    },
  };
}
