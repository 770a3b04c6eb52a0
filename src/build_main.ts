/**
 * The main module of a built executable: `daemonic build` compiles this file, with `DAEMONIC_ENTRY` replaced
 * by the entry's path (Bun's `--define`; for `deno compile`, a copy that declares it), so the bundle never
 * names a temporary file and two builds of one entry give the same bytes.
 *
 * @module
 */
// ffi/_host.ts, not `process`: on Deno its first use loads the Node compatibility layer (tens of ms a process).
import { host } from "../ffi/_host.ts";
import { VERSION } from "./version.ts";

declare const DAEMONIC_ENTRY: string;
declare const DAEMONIC_ENTRY_USES_NODE: boolean;

const argv = host.args();
const executable = host.execPath();
// --version alone is answered before the runner is loaded (its own chunk): no module, FFI or parser to pay for.
if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V") && !host.env("DAEMONIC_STAGE")) {
  const name = executable.slice(executable.lastIndexOf("/") + 1).replace(/\.[cm]?[jt]sx?$/, "") || "daemon";
  console.log(`${name} (daemonic ${VERSION})`);
  host.exit(0);
}
const { main, nameOf } = await import("./runner.ts");
const entryPath = host.scriptPath();
await main({
  name: nameOf(executable),
  version: VERSION,
  entryPath,
  load: () => import(DAEMONIC_ENTRY),
  usesNode: DAEMONIC_ENTRY_USES_NODE,
});
