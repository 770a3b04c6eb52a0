/**
 * The library outside the runner: an entry importing only the lifecycle API runs bare, on Bun and under
 * `deno run` with no permission but the environment (importing daemonic loads no FFI).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BUN, DENO, FIXTURES, ROOT, run, RUNTIME } from "./_helpers.ts";

describe(`the lifecycle API outside the runner (${RUNTIME})`, () => {
  test("an entry importing onShutdown, onReload, ready and getLogger runs bare under `bun`", () => {
    const r = run([BUN, `${FIXTURES}/hooks-only.ts`], { cwd: ROOT });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ran bare with pid \d+\n$/);
  });

  test("… and under `deno run --allow-env` (no --allow-ffi, no --allow-read)", () => {
    const r = run([DENO, "run", "--allow-env", `${FIXTURES}/hooks-only.ts`], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1" },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ran bare with pid \d+\n$/);
    assert.doesNotMatch(r.stderr, /Requires|libc|NotCapable/);
  });
});
