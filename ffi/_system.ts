/**
 * What the runner asks of the system on both runtimes (ffi/_host.ts implements it on each).
 *
 * @module
 */

/** What `stat` and `lstat` tell, the same on both runtimes. */
export interface FileInfo {
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  isFifo: boolean;
  isSocket: boolean;
  isCharDevice: boolean;
  isBlockDevice: boolean;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  ino: number;
  dev: number;
  nlink: number;
  mtimeMs: number;
}

/** A signal the runner traps or sends by name. */
export type SignalName = `SIG${Uppercase<string>}`;

/** A timer {@linkcode System.timer} started. */
export interface Timer {
  cancel(): void;
}

/** What {@linkcode host} offers. */
export interface System {
  /** The command line's arguments after the script (or, compiled, after the executable). */
  args(): string[];
  /** The runtime's own executable. */
  execPath(): string;
  /** The main script's path (in a compiled executable, its embedded main module's). */
  scriptPath(): string;
  env(name: string): string | undefined;
  deleteEnv(name: string): void;
  /** The environment as a live record, as node's `process.env`: reads, writes, deletes and spreads reach the
   * process's own. */
  environ: Record<string, string | undefined>;
  cwd(): string;
  chdir(dir: string): void;
  pid(): number;
  ppid(): number;
  uid(): number;
  euid(): number;
  /** Whether `path` exists (following symlinks). */
  exists(path: string): boolean;
  stat(path: string): FileInfo;
  lstat(path: string): FileInfo;
  readText(path: string): string;
  readBytes(path: string): Uint8Array;
  readLink(path: string): string;
  /** The names in directory `path`. */
  readDir(path: string): string[];
  /** Appends `text` to the file at `path`, creating it (0666 less the umask). */
  appendText(path: string, text: string): void;
  rename(from: string, to: string): void;
  link(existing: string, path: string): void;
  unlink(path: string): void;
  /** Removes the file at `path` if there is one. */
  remove(path: string): void;
  makeDir(path: string, options?: { mode?: number; recursive?: boolean }): void;
  /** Writes `text` to stdout before returning, so an exit right after cannot lose it. */
  writeStdout(text: string): void;
  /** Writes `text` to stderr before returning, so an exit right after cannot lose it. */
  writeStderr(text: string): void;
  /** The terminal's width when stdout is one. */
  columns(): number | undefined;
  /** kill(2) by name or number, 0 to test that `pid` exists; throws with `code` ESRCH or EPERM. */
  kill(pid: number, signal: SignalName | number): void;
  onSignal(signal: SignalName, listener: () => void): void;
  offSignal(signal: SignalName, listener: () => void): void;
  /** How many listeners `signal` has in this process, the entry's included. */
  signalListeners(signal: SignalName): number;
  /** Runs `listener` once, when the event loop has emptied (node's `beforeExit`, Deno's `beforeunload`). */
  onceIdle(listener: () => void): void;
  /** Runs `listener` when the process exits by `exit()` or an empty event loop (not by a signal). */
  onExit(listener: (code: number) => void): void;
  /** Takes uncaught exceptions and unhandled rejections: the process lives on unless `listener` ends it. */
  onFatal(listener: (err: unknown) => void): void;
  offFatal(listener: (err: unknown) => void): void;
  /** Calls `fn` after `ms`, or every `ms` with `repeat`; with `unref` it keeps no process alive. */
  timer(ms: number, fn: () => void, options?: { repeat?: boolean; unref?: boolean }): Timer;
  /** Resolves after `ms`. */
  sleep(ms: number): Promise<void>;
  exit(code: number): never;
  /** Whether Deno's Node compatibility layer has loaded in this process (never on Bun, which has none). */
  nodeLayerLoaded(): boolean;
  /** Whether this is an AArch64 machine (some flag values differ there). */
  arm64: boolean;
}
