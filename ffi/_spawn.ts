/**
 * posix_spawn(3) as daemonic uses it: default signal dispositions, an empty signal mask, only the fds asked
 * for, optionally a new session and a working directory — with the fallbacks of ffi/_fallback.ts where glibc
 * lacks a piece.
 *
 * @module
 */
import { addCloseActions, spawnIn, throughSetsid } from "./_fallback.ts";
import type { ChildFd, Kit, Libc, SpawnOptions } from "./types.ts";

const F_DUPFD_CLOEXEC = 1030;
const POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08;
/** posix_spawnattr_setflags' new-session flag (glibc 2.26). */
export const POSIX_SPAWN_SETSID = 0x80;
const encoder = new TextEncoder();
const cstr = (s: string) => encoder.encode(s + "\0");

function spawnCheck({ fail }: Kit, r: number | bigint, what: string): void {
  if (Number(r) !== 0) fail(what, undefined, Number(r));
}

/** The child's fds (dup2 or open), every other fd closed, and its working directory. */
function addFileActions(
  kit: Kit,
  actions: Uint8Array,
  options: SpawnOptions,
  high: ChildFd[],
  keep: Uint8Array[],
): void {
  const { f, raw, has, fail } = kit;
  high.forEach((fd, target) => {
    if (typeof fd === "number") {
      spawnCheck(kit, f.posix_spawn_file_actions_adddup2(actions, fd, target), "posix_spawn_file_actions_adddup2");
    } else {
      const path = cstr(fd.path);
      keep.push(path);
      spawnCheck(
        kit,
        f.posix_spawn_file_actions_addopen(actions, target, path, fd.flags, fd.mode ?? 0o644),
        "posix_spawn_file_actions_addopen",
      );
    }
  });
  if (has("posix_spawn_file_actions_addclosefrom_np")) {
    spawnCheck(
      kit,
      f.posix_spawn_file_actions_addclosefrom_np(actions, options.fds.length),
      "posix_spawn_file_actions_addclosefrom_np",
    );
  } else {
    addCloseActions(raw, actions, options.fds.length, fail);
  }
  if (options.cwd) {
    const cwd = cstr(options.cwd);
    keep.push(cwd);
    spawnCheck(kit, f.posix_spawn_file_actions_addchdir_np(actions, cwd), "posix_spawn_file_actions_addchdir_np");
  }
}

/** Spawns `options.path`; `libc` is the one to recurse through when a fallback rewrites the call. */
export function spawn(kit: Kit, options: SpawnOptions, libc: Libc): number {
  const { f, raw, has, fail, check, cArray } = kit;
  if (options.setsid && !has("POSIX_SPAWN_SETSID")) return libc.spawn(throughSetsid(options));
  if (options.cwd && !has("posix_spawn_file_actions_addchdir_np")) {
    return spawnIn(raw, options.cwd, fail, () => libc.spawn({ ...options, cwd: undefined }));
  }
  const keep: Uint8Array[] = [];
  const actions = new Uint8Array(256), attr = new Uint8Array(512); // sizeof: 80 and 336 on glibc x86-64
  // Move every parent fd above the child's range first, so no dup2 action overwrites a later source.
  const high = options.fds.map((fd) =>
    typeof fd === "number" ? check(f.fcntl(fd, F_DUPFD_CLOEXEC, options.fds.length), "fcntl(F_DUPFD)") : fd
  );
  spawnCheck(kit, f.posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init");
  spawnCheck(kit, f.posix_spawnattr_init(attr), "posix_spawnattr_init");
  try {
    addFileActions(kit, actions, options, high, keep);
    const all = new Uint8Array(128).fill(0xff), none = new Uint8Array(128); // sigset_t
    spawnCheck(kit, f.posix_spawnattr_setsigdefault(attr, all), "posix_spawnattr_setsigdefault");
    spawnCheck(kit, f.posix_spawnattr_setsigmask(attr, none), "posix_spawnattr_setsigmask");
    const flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (options.setsid ? POSIX_SPAWN_SETSID : 0);
    spawnCheck(kit, f.posix_spawnattr_setflags(attr, flags), "posix_spawnattr_setflags");
    const env = Object.entries(options.env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
    const pid = new Int32Array(1);
    const r = f.posix_spawn(
      new Uint8Array(pid.buffer),
      cstr(options.path),
      actions,
      attr,
      cArray(options.argv, keep),
      cArray(env, keep),
    );
    if (Number(r) !== 0) fail("posix_spawn", options.path, Number(r));
    return pid[0];
  } finally {
    f.posix_spawn_file_actions_destroy(actions);
    f.posix_spawnattr_destroy(attr);
    for (const fd of high) if (typeof fd === "number") f.close(fd);
  }
}
