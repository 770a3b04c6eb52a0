/**
 * The flags the runner takes, for `node:util` parseArgs: every action and option of a built daemon (see
 * usage.ts for what each means, options.ts for how their values are checked).
 *
 * @module
 */

/** The runner's flags. */
export const FLAGS = {
  daemon: { type: "boolean", short: "d" },
  stop: { type: "boolean" },
  status: { type: "boolean" },
  restart: { type: "boolean" },
  reload: { type: "boolean" },
  upgrade: { type: "boolean" },
  "reopen-logs": { type: "boolean" },
  "hold-logs": { type: "boolean" },
  logs: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
  "pid-file": { type: "string" },
  "log-file": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  follow: { type: "boolean", short: "f" },
  lines: { type: "string", short: "n" },
  chdir: { type: "string" },
  umask: { type: "string" },
  timeout: { type: "string" },
  "start-timeout": { type: "string" },
  ready: { type: "string" },
  name: { type: "string" },
  workers: { type: "string", short: "w" },
  "no-keep-alive": { type: "boolean" },
  "keep-alive": { type: "boolean" },
  list: { type: "boolean" },
  json: { type: "boolean" },
  "worker-timeout": { type: "string" },
  "max-memory": { type: "string" },
  "log-timestamps": { type: "boolean" },
  "env-file": { type: "string", multiple: true },
  "install-service": { type: "boolean" },
  "uninstall-service": { type: "boolean" },
  "print-service": { type: "boolean" },
  "user-service": { type: "boolean" },
  now: { type: "boolean" },
  "service-user": { type: "string" },
  "service-group": { type: "string" },
  "watchdog-sec": { type: "string" },
  user: { type: "string" },
  group: { type: "string" },
} as const;
