/**
 * The soak (issue 24), scaled to the suite: 30 s of `--daemon --workers 2` while, every 2 s, a `--reload`,
 * a `kill -9` of the youngest worker, TTIN, TTOU or a log rotation (`--reopen-logs`) hits it and a client
 * connects every 10 ms: the port never goes without a listener for more than 0.3 s, and the master's RSS,
 * fds and zombie children stay flat. `DAEMONIC_SOAK_SECONDS` changes the length; `npm run bench` has the
 * long form (scripts/bench_soak.ts, shared with this test). Under `bun test` the daemon is a built binary,
 * under `deno test` it runs through `deno task daemonic run`.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { soak } from "../scripts/bench_soak.ts";
import { fileSandbox, FIXTURES, freePort, RUNTIME, sandboxed, targetFor } from "./_helpers.ts";

// One whole cycle of the 12 actions (24 s: 3 reloads, 6 kills, TTIN, TTOU, a reopen) and the next ones.
const SECONDS = Number(process.env.DAEMONIC_SOAK_SECONDS ?? 30);
const buildDir = fileSandbox();
const target = await targetFor(["app.ts"], buildDir.dir);

describe(`soak (${RUNTIME})`, () => {
  test(
    `${SECONDS} s of reloads, kill -9 of the youngest worker, TTIN/TTOU and log reopens: never 0.3 s without a listener; the master stays flat`,
    { timeout: (SECONDS + 120) * 1000 },
    sandboxed(async (sb) => {
      const port = await freePort();
      const r = await soak({
        command: (args) => target.argv(`${FIXTURES}/app.ts`, args),
        entryArgs: [String(port)],
        port,
        dir: sb.dir,
        seconds: SECONDS,
        track: (pid) => sb.track(pid),
      });
      const summary = `gaps ${
        r.gaps.slice(0, 5).map((g) => g.toFixed(0))
      } ms; ${r.refused}/${r.probes} refused; actions ${JSON.stringify(r.actions)}; ` +
        `master RSS ${r.start.rssKb} → ${r.end.rssKb} kB, fds ${r.start.fds} → ${r.end.fds}, zombies max ${r.zombiesMax}, end ${r.end.zombies}`;
      console.error(`soak (${RUNTIME}): ${summary}`);
      assert.ok(
        r.probes >= SECONDS * 20,
        `only ${r.probes} connects in ${r.seconds} s: the client did not probe every 10 ms (${summary})`,
      );
      assert.deepEqual(
        r.gaps.filter((g) =>
          g > 300
        ),
        [],
        `windows without a listener longer than 0.3 s (${summary})`,
      );
      // Every action happened, and the master saw each: the kills restarted at once, never as a crash loop.
      assert.ok(
        r.actions.kill >= 3 && r.actions.reload >= 2 && r.actions.ttin >= 1 && r.actions.ttou >= 1 &&
          r.actions.reopen >= 1,
        summary,
      );
      // A kill of a serving worker is replaced at once; one of a successor or a retiring worker changes nothing else.
      const replaced = r.log.split("\n").filter((l) => /was killed by signal 9 after/.test(l));
      assert.ok(replaced.length >= 1, "no kill -9 of a serving worker reached the master's log");
      assert.deepEqual(
        replaced.filter((l) => !/; restarting$/.test(l)),
        [],
        "a kill -9 was backed off",
      );
      assert.doesNotMatch(r.log, /crash loop|cannot start worker/);
      assert.ok((r.log.match(/rolling restart done/g)?.length ?? 0) >= 1, "no rolling restart finished");
      assert.match(r.log, /SIGTTIN: adding worker\[3\]/);
      assert.match(r.log, /SIGTTOU: retiring worker\[3\]/);
      assert.ok(r.settled, `the master did not get back to 2 steady workers (${summary})`);
      // Flat: no fd, memory or zombie piles up in the master (the same 2 workers at both looks).
      assert.ok(r.end.fds <= r.start.fds + 3, `the master's fds grew (${summary})`);
      assert.ok(r.end.rssKb <= r.start.rssKb + 40 * 1024, `the master's RSS grew by more than 40 MiB (${summary})`);
      assert.equal(r.end.zombies, 0, `zombies left (${summary})`);
      assert.ok(r.zombiesMax <= 2, `zombies piled up (${summary})`);
      assert.ok(r.stopped, "--stop failed, or left the master");
    }),
  );
});
