/**
 * `--user USER [--group GROUP]`: the process that runs the entry drops root before the entry runs, keeping
 * only CAP_NET_BIND_SERVICE (permitted, effective, inheritable and ambient) so the entry can still bind
 * port 80, as systemd's `User=` with `AmbientCapabilities=CAP_NET_BIND_SERVICE` does. What was opened
 * before the drop stays open: the pid file (locked, root's), the log file (inherited from the launcher).
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { type Libc, libc as systemLibc } from "../ffi/mod.ts";
import { DaemonError } from "./errors.ts";

/** The capability the entry keeps: bind ports below 1024. */
export const CAP_NET_BIND_SERVICE = 10;

/** Who the entry runs as: names and ids, looked up through NSS. */
export interface Identity {
  user: string;
  uid: number;
  gid: number;
  group?: string;
}

/**
 * The identity `--user`/`--group` ask for, `undefined` without `--user`. Throws NO_PERMISSION (77) when
 * this process is not root, NO_USER (67) when the user or the group does not exist: before anything is done.
 *
 * @example
 * ```ts
 * import { identityOf } from "./privileges.ts";
 * console.log(identityOf({})); // undefined: no --user, nothing to drop
 * ```
 */
export function identityOf(settings: { user?: string; group?: string }, libc: Libc = systemLibc): Identity | undefined {
  const { user, group } = settings;
  if (user === undefined) return undefined;
  const euid = host.euid();
  if (euid !== 0) {
    throw new DaemonError(
      "NO_PERMISSION",
      `Cannot run as user ${user}: only root can switch users (this is uid ${euid}): start it as root (sudo), or ` +
        `drop --user`,
    );
  }
  const found = libc.lookupUser(user);
  if (!found) {
    throw new DaemonError(
      "NO_USER",
      `Invalid --user '${user}': no such user: create it (useradd --system ${user}) or pick another`,
    );
  }
  if (group === undefined) return { user, ...found };
  const gid = libc.lookupGroup(group);
  if (gid === null) {
    throw new DaemonError(
      "NO_USER",
      `Invalid --group '${group}': no such group: create it (groupadd --system ${group}) or pick another`,
    );
  }
  return { user, uid: found.uid, gid, group };
}

/**
 * Becomes `--user`'s user (and `--group`'s group, else the user's own), with the user's supplementary groups,
 * keeping CAP_NET_BIND_SERVICE; nothing without `--user`. The order matters: KEEPCAPS keeps the permitted
 * set across setresuid, which must come last of the ids (a non-root cannot change groups), and capset then
 * narrows the permitted set to the one capability, which is what PR_CAP_AMBIENT_RAISE needs.
 *
 * @example
 * ```ts
 * import { dropPrivileges } from "./privileges.ts";
 * dropPrivileges({}); // no --user: stays as it is
 * ```
 */
export function dropPrivileges(
  settings: { user?: string; group?: string },
  libc: Libc = systemLibc,
): Identity | undefined {
  const identity = identityOf(settings, libc);
  if (!identity) return undefined;
  libc.setKeepCapabilities(true);
  libc.initGroups(identity.user, identity.gid);
  libc.setGid(identity.gid);
  libc.setUid(identity.uid);
  libc.keepCapabilities([CAP_NET_BIND_SERVICE]);
  libc.setKeepCapabilities(false);
  return identity;
}

/** The real uid of `pid`, from /proc/PID/status; `undefined` when it is gone. */
function uidOf(pid: number): number | undefined {
  try {
    return Number(/^Uid:\s+(\d+)/m.exec(host.readText(`/proc/${pid}/status`))?.[1]);
  } catch {
    return undefined;
  }
}

/** A uid's name for display: /etc/passwd is enough here (a user only NSS knows shows as its number). */
function userName(uid: number | undefined): string {
  const line = readOr("/etc/passwd").split("\n").find((l) => l.split(":")[2] === String(uid));
  return line?.split(":")[0] ?? `uid ${uid}`;
}

const readOr = (path: string) => {
  try {
    return host.readText(path);
  } catch {
    return "";
  }
};

/**
 * `--status`'s line on who runs the entry, when it is not whoever asks: `master runs as root, workers as
 * nobody` (a master of `--user` runs no entry code and stays root, to start workers), or `runs as nobody`.
 *
 * @example
 * ```ts
 * import { whoRuns } from "./privileges.ts";
 * console.log(whoRuns(process.pid, [])); // undefined: this process runs as whoever asks
 * ```
 */
export function whoRuns(daemonPid: number, workerPids: readonly number[]): string | undefined {
  const daemon = uidOf(daemonPid), workers = [...new Set(workerPids.map(uidOf))];
  if (workerPids.length) {
    return workers.some((uid) => uid !== daemon)
      ? `master runs as ${userName(daemon)}, workers as ${workers.map(userName).join(", ")}`
      : undefined;
  }
  return daemon !== host.uid() ? `runs as ${userName(daemon)}` : undefined;
}
