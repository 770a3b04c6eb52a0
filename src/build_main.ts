/**
 * The main module of a built executable: `daemonic build` compiles this file, with `DAEMONIC_ENTRY` replaced
 * by the entry's path (Bun's `--define`; for `deno compile`, a copy that declares it), so the bundle never
 * names a temporary file and two builds of one entry give the same bytes.
 *
 * @module
 */
// The global `process`, not node:process: on Deno its first `node:` import costs ~15 ms, and --version pays none.
import { VERSION } from "./version.ts";

declare const DAEMONIC_ENTRY: string;
declare const DAEMONIC_ENTRY_USES_NODE: boolean;

const argv = process.argv.slice(2);
// --version alone is answered before the runner is loaded (its own chunk): no module, FFI or parser to pay for.
if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V") && !process.env.DAEMONIC_STAGE) {
  const name = process.execPath.slice(process.execPath.lastIndexOf("/") + 1).replace(/\.[cm]?[jt]sx?$/, "") || "daemon";
  console.log(`${name} (daemonic ${VERSION})`);
  process.exit(0);
}
const { main, nameOf } = await import("./runner.ts");
const entryPath = process.argv[1];
await main({
  name: nameOf(process.execPath),
  version: VERSION,
  entryPath,
  load: () => import(DAEMONIC_ENTRY),
  usesNode: DAEMONIC_ENTRY_USES_NODE,
});
