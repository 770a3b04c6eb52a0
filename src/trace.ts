/**
 * Start-up marks for the bench (`DAEMONIC_TRACE=FILE`): each process appends `PID EPOCH_MS STEP` lines, the
 * runtime's clock at each of the runner's steps, so `npm run bench` can say where a start's milliseconds go.
 * Unset (always, outside the bench), a mark is an empty call.
 *
 * @module
 */
import { appendFileSync } from "node:fs";
import process from "node:process";

/** The environment variable naming the file the marks are appended to. */
export const TRACE_ENV = "DAEMONIC_TRACE";

const file = process.env[TRACE_ENV];

/** Records that this process reached `step` (epoch ms, from the runtime's clock). */
export const mark: (step: string) => void = file
  ? (step) => appendFileSync(file, `${process.pid} ${(performance.timeOrigin + performance.now()).toFixed(3)} ${step}\n`)
  : () => {};

mark("runtime started, runner loading"); // the first mark also records the runtime's own start (timeOrigin)
if (file) appendFileSync(file, `${process.pid} ${performance.timeOrigin.toFixed(3)} runtime's time origin\n`);
