#!/usr/bin/env bash
# The whole suite on both runtimes: one node:test suite, run by `bun test` and by `deno test`.
# Ends with the line "N passed, N failed" summed over both runs; exits non-zero when anything failed.
#
# Each test process uses about one of the machine's cores, so two things run at a time, never two that share
# host state: beside the bun pass run the checks and the files that run mostly in namespaces of their own
# (podman, the Debian 11 and arm64 chroots, a systemd container), which share no sysctl, fixed port or
# binfmt_misc entry with the bun pass's files; the timing-bound files (the soak, lossless restarts under load)
# and the deno pass run alone. Files whose commands do not depend on the runtime running them run once, in
# the bun pass (ONCE).
set -u
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
# As if typed in a shell: `npm test` sets INIT_CWD, which deno task and npx would hand on to the daemons the
# tests start in directories of their own, resolving their relative paths against this checkout.
unset INIT_CWD
bash scripts/setup-test-tools.sh || exit 1

# What they run does not depend on the runtime running the file (a binary built with Bun; `deno run` as a
# user types it): the bun pass only.
ONCE=(test/container.test.ts test/ship.test.ts test/deno_user.test.ts)
# In namespaces of their own (podman; Debian 11 and arm64 chroots; a systemd container): beside the bun pass.
ASIDE=(test/container.test.ts test/ship.test.ts test/service.test.ts)
ALONE=(test/soak.test.ts test/lossless.test.ts) # a listener gap of 0.3 s, no failed request under wrk: alone

selected=()
for arg in "${@:-test/}"; do
  if [ -d "$arg" ]; then selected+=("${arg%/}"/*.test.ts); else selected+=("$arg"); fi
done
in_list() { # $1 = file, rest = list
  local f=$1 x
  shift
  for x in "$@"; do [ "$f" -ef "$x" ] && return 0; done
  return 1
}
bun_aside=() deno_aside=() bun_main=() bun_alone=() deno_main=() # each pass's files, in the order they run
for f in "${selected[@]}"; do
  if in_list "$f" "${ASIDE[@]}"; then
    bun_aside+=("$f")
    in_list "$f" "${ONCE[@]}" || deno_aside+=("$f")
    continue
  fi
  if in_list "$f" "${ALONE[@]}"; then bun_alone+=("$f"); else bun_main+=("$f"); fi
  in_list "$f" "${ONCE[@]}" || deno_main+=("$f")
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

bun_test() { # $1 = output file, rest = test files (none: nothing runs; `bun test` alone would run them all)
  local file=$1
  shift
  [ $# -gt 0 ] || return 0
  bun test --timeout 60000 "$@" >"$file" 2>&1
}
deno_test() {
  local file=$1
  shift
  [ $# -gt 0 ] || return 0
  NO_COLOR=1 deno test -A --unstable-net --no-check "$@" >"$file" 2>&1
}
rc_of() { cat "$out/$1.rc" 2>/dev/null || echo 1; } # a step that never wrote its status failed

# Made before anything runs beside it: the user's project is `npm pack` of this checkout, which rewrites
# dist/ and node_modules/.cache/deno.d.ts (read by tsc), once per source state (test/_project.ts).
bun -e 'await (await import("./test/_project.ts")).userProject()' || echo "the user's project could not be made: the tests that run it will say why"

# The checks and the namespaced files, beside the bun pass; each step's output is printed after the bun pass.
# A process group of their own (set -m), so an interrupt of this script reaches them too.
set -m
(
  set +m # its own commands stay in its group
  bash scripts/check.sh >"$out/check.txt" 2>&1
  echo $? >"$out/check.rc"
  python3 scripts/layout-check.py >"$out/layout.txt" 2>&1
  echo $? >"$out/layout.rc"
  docs=$(ls mod.ts src/*.ts src/*/*.ts ffi/*.ts | grep -v -e '^src/cli.ts$' -e '^src/build_main.ts$') # both run the runner when loaded
  NO_COLOR=1 deno test --doc -A --unstable-net $docs >"$out/doc.txt" 2>&1
  echo $? >"$out/doc.rc"
  bun_test "$out/bun-aside.txt" "${bun_aside[@]}"
  echo $? >"$out/bun-aside.rc"
  deno_test "$out/deno-aside.txt" "${deno_aside[@]}"
  echo $? >"$out/deno-aside.rc"
) &
aside_pid=$!
set +m
trap 'kill -TERM -- -$aside_pid 2>/dev/null; exit 130' INT TERM

echo "== bun test (beside it: the type check, layout, doc examples, then ${bun_aside[*]}; their output follows)"
if [ ${#bun_main[@]} -gt 0 ]; then
  bun test --timeout 60000 "${bun_main[@]}" 2>&1 | tee "$out/bun.txt"
  echo "${PIPESTATUS[0]}" >"$out/bun.rc"
fi
wait $aside_pid

echo "== type check (deno check, tsc)"
cat "$out/check.txt" 2>/dev/null
check_fail=0
[ "$(rc_of check)" -eq 0 ] || { echo "type check failed"; check_fail=1; }

echo "== layout (issue 9's bounds: file and function sizes, import cycles, FFI only in ffi/)"
cat "$out/layout.txt" 2>/dev/null
[ "$(rc_of layout)" -eq 0 ] || check_fail=1

echo "== doc examples (deno test --doc: every @example not marked ignore runs)"
grep -E '^(ok|FAILED) \|' "$out/doc.txt" 2>/dev/null
doc_rc=$(rc_of doc)
doc_pass=$(grep -oE '[0-9]+ passed' "$out/doc.txt" 2>/dev/null | tail -1 | grep -oE '[0-9]+' || echo 0)
doc_fail=$(grep -oE '[0-9]+ failed' "$out/doc.txt" 2>/dev/null | tail -1 | grep -oE '[0-9]+' || echo 0)
[ "$doc_rc" -ne 0 ] && [ "${doc_fail:-0}" -eq 0 ] && doc_fail=1

if [ ${#bun_aside[@]} -gt 0 ]; then
  echo "== bun test: ${bun_aside[*]} (beside the bun pass)"
  cat "$out/bun-aside.txt" 2>/dev/null
fi
if [ ${#deno_aside[@]} -gt 0 ]; then
  echo "== deno test: ${deno_aside[*]} (beside the bun pass)"
  cat "$out/deno-aside.txt" 2>/dev/null
fi

if [ ${#bun_alone[@]} -gt 0 ]; then
  echo "== bun test: ${bun_alone[*]} (alone)"
  bun test --timeout 60000 "${bun_alone[@]}" 2>&1 | tee "$out/bun-alone.txt"
  echo "${PIPESTATUS[0]}" >"$out/bun-alone.rc"
fi

echo "== deno test"
if [ ${#deno_main[@]} -gt 0 ]; then
  NO_COLOR=1 deno test -A --unstable-net --no-check "${deno_main[@]}" 2>&1 | tee "$out/deno.txt"
  echo "${PIPESTATUS[0]}" >"$out/deno.rc"
fi

# Per runner output: bun: " 12 pass" / " 0 fail"; deno: "ok | 12 passed | 0 failed" (or "FAILED | ...").
bun_count() { # $1 = pass|fail|skip, $2 = output file
  grep -E "^ *[0-9]+ $1\$" "$2" 2>/dev/null | tail -1 | grep -oE '[0-9]+' || echo 0
}
# deno counts describe() blocks as tests and test() inside them as steps: count the steps when there are any.
deno_count() { # $1 = passed|failed, $2 = output file
  local seg
  seg=$(grep -oE "\| [0-9]+ $1( \([0-9]+ steps?\))?" "$2" 2>/dev/null | tail -1)
  [ -n "$seg" ] || { echo 0; return; }
  if [[ $seg =~ \(([0-9]+)\ step ]]; then echo "${BASH_REMATCH[1]}"; else echo "$seg" | grep -oE '[0-9]+' | head -1; fi
}
bun_pass=0 bun_fail=0 bun_skip=0 deno_pass=0 deno_fail=0 deno_skip=0
# The main lane writes a status only for what it ran; the one beside it always does, or it died.
for run in bun bun-aside bun-alone; do
  [ -f "$out/$run.rc" ] || [ $run = bun-aside ] || continue
  pass=$(bun_count pass "$out/$run.txt") fail=$(bun_count fail "$out/$run.txt")
  # A runner that crashed before its summary counts as one failure, so a broken run is never green.
  [ "$(rc_of "$run")" -ne 0 ] && [ "$fail" -eq 0 ] && fail=1
  bun_pass=$((bun_pass + pass)) bun_fail=$((bun_fail + fail))
  bun_skip=$((bun_skip + $(bun_count skip "$out/$run.txt")))
done
for run in deno deno-aside; do
  [ -f "$out/$run.rc" ] || [ $run = deno-aside ] || continue
  pass=$(deno_count passed "$out/$run.txt") fail=$(deno_count failed "$out/$run.txt")
  [ "$(rc_of "$run")" -ne 0 ] && [ "$fail" -eq 0 ] && fail=1
  deno_pass=$((deno_pass + pass)) deno_fail=$((deno_fail + fail))
  skips=$(grep -cE '\.\.\. (ignored|skipped)' "$out/$run.txt" 2>/dev/null)
  deno_skip=$((deno_skip + ${skips:-0}))
done
passed=$((bun_pass + deno_pass + doc_pass))
failed=$((bun_fail + deno_fail + doc_fail + check_fail))
skipped=$((bun_skip + deno_skip))
echo "bun: $bun_pass passed, $bun_fail failed, $bun_skip skipped; deno: $deno_pass passed, $deno_fail failed, $deno_skip skipped; doc examples: $doc_pass passed, $doc_fail failed; $skipped skipped in all"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
