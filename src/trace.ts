/**
 * Start-up marks for the bench (`DAEMONIC_TRACE=FILE`): each process appends `PID EPOCH_MS STEP` lines, the
 * runtime's clock at each of the runner's steps, so `npm run bench` can say where a start's milliseconds go.
 * Unset (always, outside the bench), a mark is an empty call. No `node:` module: on Deno its first one costs
 * every process milliseconds (see _runtime.ts).
 *
 * @module
 */
import { RUNTIME } from "./_runtime.ts";

/** The environment variable naming the file the marks are appended to. */
export const TRACE_ENV = "DAEMONIC_TRACE";

const { sys } = RUNTIME;
const file = sys.env(TRACE_ENV);

/** Records that this process reached `step` (epoch ms, from the runtime's clock). */
export const mark: (step: string) => void = file
  ? (step) => {
    const node = sys.nodeLayerLoaded() ? " [node layer loaded]" : ""; // test/deno_user.test.ts looks for it
    sys.appendText(file, `${sys.pid()} ${(performance.timeOrigin + performance.now()).toFixed(3)} ${step}${node}\n`);
  }
  : () => {};

mark("runtime started, runner loading"); // the first mark also records the runtime's own start (timeOrigin)
if (file) sys.appendText(file, `${sys.pid()} ${performance.timeOrigin.toFixed(3)} runtime's time origin\n`);
