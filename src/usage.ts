/**
 * The usage text of a built daemon (`--help`), kept apart from the parsing it describes.
 *
 * @module
 */

/**
 * The usage text of a compiled daemon (`--help`).
 *
 * @example
 * ```ts
 * import { usage } from "./usage.ts";
 * console.log(usage("mydaemon").split("\n")[0]); // Usage: mydaemon [action] [options] [-- args for the entry]
 * ```
 */
export function usage(name: string): string {
  return `Usage: ${name} [action] [options] [-- args for the entry]

Actions (one at most; none runs the entry in the foreground):
  -d, --daemon          detach per daemon(7); exit 0 once the entry is ready, printing its pid
      --stop            SIGTERM, wait --timeout seconds, then SIGKILL; exit 0 once stopped
      --status          LSB codes: 0 running, 1 dead but pid file left, 3 not running, 4 unknown
      --restart         --stop, then --daemon with the options it was started with (remembered in the
                        registry), the flags given now replacing theirs
      --list            every daemon of this user (any daemonic binary): pid, status, uptime, restarts,
                        workers, RSS, CPU %, ports, log; --json for JSON (also with --status)
      --reload          load the new version: the entry (each worker) is replaced by one started from the
                        executable on disk, successor first, with no failed request; waits and says what it
                        replaced (SIGHUP; with --no-keep-alive: the entry's onReload hooks run in place)
      --upgrade         replace the master (or keep-alive's supervisor) too: the executable on disk starts as a
                        new master beside the old one, which retires once it is ready; prints both pids; the
                        old one keeps serving if the new one fails (SIGUSR2)
      --reopen-logs     send SIGURG to the daemon: it reopens --log-file (for logrotate's postrotate)
      --hold-logs       for copytruncate's prerotate: the daemon and its workers write nowhere near the log
                        until --reopen-logs, which writes the held lines first; so no line is lost
      --logs            print the last lines of the daemon's log (the path is found next to the pid file,
                        in PIDFILE.log-path, or given with --log-file); -f follows it across rotations
      --install-service write a systemd unit running this binary with these options and -- args, reload
                        systemd and enable it (--now: start it too); /etc/systemd/system/NAME.service,
                        or ~/.config/systemd/user/ with --user-service
      --uninstall-service  stop, disable and remove that unit
      --print-service   print that unit without installing it
  -h, --help            this text
  -V, --version         the version

${options(name)}`;
}

/** The options part of {@linkcode usage}. */
function options(name: string): string {
  return `Options:
      --pid-file PATH   locked pid file (default: /run/NAME.pid as root, else in a private 0700 directory:
                        $XDG_RUNTIME_DIR/daemonic/NAME.pid, else /tmp/daemonic-UID/NAME.pid)
      --log-file PATH   stdout and stderr of the daemon, appended (default: /dev/null); reopened on --reopen-logs
      --log-level LEVEL lowest level getLogger() and the runner write: trace, debug, info, warning, error,
                        fatal (default: info)
      --log-format FMT  text, or json: one JSON object a line with @timestamp, level, pid, worker (in a
                        worker), logger, message, properties (default: text)
  -n, --lines N         --logs: how many lines from the end (default: 10)
  -f, --follow          --logs: keep printing new lines, across rotations, until interrupted
      --chdir DIR       working directory of the daemon (default: /)
      --umask OCTAL     file mode creation mask of the daemon (default: 022)
      --timeout SEC     how long --stop waits before SIGKILL (default: 10)
      --start-timeout SEC  how long --daemon waits for readiness (default: 60)
      --ready MODE      auto: ready when the entry listens on a socket or calls ready(), or has run 1 s
                        without failing; manual: only when it calls ready() (default: auto)
      --name NAME       name for the default pid file and the process title (default: ${name})
  -w, --workers N       pre-fork N workers sharing the entry's port (SO_REUSEPORT), supervised by a master
                        that runs no entry code (default: 0: one copy of the entry, restarted when it dies)
      --no-keep-alive   with no --workers: run the entry in the daemon process itself, not restarted
      --keep-alive      in the foreground (a systemd unit): a supervisor of one copy of the entry, as --daemon
                        has by default, so --reload replaces it successor first
      --worker-timeout SEC  kill and replace a worker whose heartbeat is older than this (default: 60)
      --user USER       run the entry as USER (as root only): the pid file and log are opened as root first,
                        the entry keeps CAP_NET_BIND_SERVICE (ports below 1024); with --workers the master
                        stays root and runs no entry code, each worker switches
      --group GROUP     with --user: this group instead of USER's own
      --max-memory SIZE replace a worker (or the kept-alive entry) whose RSS stays above SIZE (K, M or G,
                        e.g. 300M) for 3 s: its successor starts first, one at a time (needs a supervisor:
                        --workers, or keep-alive)
      --log-timestamps  prefix each line a worker writes to stdout or stderr with the time, its pid and
                        worker id; whole lines only (needs a supervisor: it writes them)
      --env-file PATH   KEY=value lines (.env, as Bun and Deno read it) for the entry's environment, read
                        again for each new worker and on --reload; repeatable, a later file wins
      --now             --install-service: start the service as well
      --user-service    --install-service, --uninstall-service: the user's systemd, not the system's
      --service-user USER, --service-group GROUP  the unit's User= and Group=; it may bind ports below 1024
      --watchdog-sec SEC  the unit's WatchdogSec=: systemd kills and restarts an entry whose event loop blocks

Signals to a master (with workers, or keep-alive's supervisor): TERM/INT quick stop, QUIT graceful stop,
HUP rolling restart (--reload), USR2 binary upgrade (--upgrade), TTIN/TTOU one worker more/less, URG (USR1
on Bun too) reopen logs.

Exit codes: 0 ok, 64 usage, 66 entry, directory or log missing, 67 no such --user or --group, 69 start-up
failed (--reload, --upgrade: the new version did not start; the old one still serves), 73 cannot create the
pid or log file, 75 already running, 77 not permitted, 7 not running (--reload, --upgrade, --reopen-logs,
--hold-logs).`;
}
