/**
 * The action flags of the runner, one row each (see option_table.ts, which re-exports them): `--help`, the
 * README's table and the parser are derived from these rows.
 *
 * @module
 */
import type { ActionRow } from "./option_types.ts";

/** The action flags, in the order `--help` lists them. */
// deno-fmt-ignore -- a table: one line an action
export const ACTIONS: readonly ActionRow[] = [
  { name: "daemon", short: "d", help: "detach per daemon(7); exit 0 once the entry is ready, printing its pid" },
  { name: "stop", help: "SIGTERM, wait --timeout seconds, then SIGKILL; exit 0 once stopped" },
  { name: "status", help: "LSB codes: 0 running, 1 dead but pid file left, 3 not running, 4 unknown" },
  {
    name: "restart",
    help: "--stop, then --daemon with the options and environment it was started with; flags given now replace theirs",
  },
  {
    name: "reload",
    help: "load the version on disk: each process running the entry is replaced, successor first, with no failed " +
      "request; waits and says what it replaced (SIGHUP; 69 if the new version fails, the old one serving on; " +
      "--no-keep-alive: the entry's onReload hooks run in place)",
  },
  {
    name: "upgrade",
    help: "--reload, and the master (or keep-alive's supervisor) replaced too: a new one starts from the executable " +
      "on disk and the old one retires once it is ready; prints both pids (SIGUSR2; 69 if it fails, the old one " +
      "serving on)",
  },
  {
    name: "list",
    help: "every daemon of this user (any daemonic binary): pid, status, uptime, restarts, workers, RSS, CPU, " +
      "ports, log",
  },
  { name: "reopen-logs", help: "SIGURG: the daemon reopens --log-file (logrotate's postrotate)" },
  { name: "hold-logs", help: "for copytruncate's prerotate: nothing is written to the log until --reopen-logs" },
  { name: "logs", help: "print the last lines of the daemon's log (found from its pid file); -f follows it" },
  {
    name: "install-service",
    help: "write a systemd unit running this binary with these options, enable it (--now: start it)",
  },
  { name: "uninstall-service", help: "stop, disable and remove that unit" },
  { name: "print-service", help: "print that unit without installing it" },
  { name: "help", short: "h", help: "this text" },
  { name: "version", short: "V", help: "the version" },
];
