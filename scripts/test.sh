#!/usr/bin/env bash
# The whole suite on both runtimes: one node:test suite, run by `bun test` and by `deno test`.
# Ends with the line "N passed, N failed" summed over both runs; exits non-zero when anything failed.
set -u
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
# As if typed in a shell: `npm test` sets INIT_CWD, which deno task and npx would hand on to the daemons the
# tests start in directories of their own, resolving their relative paths against this checkout.
unset INIT_CWD
bash scripts/setup-test-tools.sh || exit 1

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== type check (deno check, tsc)"
check_fail=0
bash scripts/check.sh || { echo "type check failed"; check_fail=1; }

echo "== layout (issue 9's bounds: file and function sizes, import cycles, FFI only in ffi/)"
python3 scripts/layout-check.py || check_fail=1

echo "== doc examples (deno test --doc: every @example not marked ignore runs)"
docs=$(ls mod.ts src/*.ts src/*/*.ts ffi/*.ts | grep -v -e '^src/cli.ts$' -e '^src/build_main.ts$')  # both run the runner when loaded
NO_COLOR=1 deno test --doc -A --unstable-net $docs 2>&1 | tee "$out/doc.txt" | grep -E '^(ok|FAILED) \|'
doc_rc=${PIPESTATUS[0]}
doc_pass=$(grep -oE '[0-9]+ passed' "$out/doc.txt" | tail -1 | grep -oE '[0-9]+' || echo 0)
doc_fail=$(grep -oE '[0-9]+ failed' "$out/doc.txt" | tail -1 | grep -oE '[0-9]+' || echo 0)
[ "$doc_rc" -ne 0 ] && [ "${doc_fail:-0}" -eq 0 ] && doc_fail=1

echo "== bun test"
bun test --timeout 60000 "${files[@]}" 2>&1 | tee "$out/bun.txt"
bun_rc=${PIPESTATUS[0]}
echo "== deno test"
NO_COLOR=1 deno test -A --unstable-net --no-check "${files[@]}" 2>&1 | tee "$out/deno.txt"
deno_rc=${PIPESTATUS[0]}

# bun: " 12 pass" / " 0 fail"; deno: "ok | 12 passed | 0 failed" (or "FAILED | ...").
bun_pass=$(grep -E '^ *[0-9]+ pass$' "$out/bun.txt" | tail -1 | grep -oE '[0-9]+' || echo 0)
bun_fail=$(grep -E '^ *[0-9]+ fail$' "$out/bun.txt" | tail -1 | grep -oE '[0-9]+' || echo 0)
# deno counts describe() blocks as tests and test() inside them as steps: count the steps when there are any.
deno_count() { # $1 = passed|failed
  local seg
  seg=$(grep -oE "\| [0-9]+ $1( \([0-9]+ steps?\))?" "$out/deno.txt" | tail -1)
  [ -n "$seg" ] || { echo 0; return; }
  if [[ $seg =~ \(([0-9]+)\ step ]]; then echo "${BASH_REMATCH[1]}"; else echo "$seg" | grep -oE '[0-9]+' | head -1; fi
}
deno_pass=$(deno_count passed)
deno_fail=$(deno_count failed)
bun_skip=$(grep -E '^ *[0-9]+ skip$' "$out/bun.txt" | tail -1 | grep -oE '[0-9]+' || echo 0)
deno_skip=$(grep -cE '\.\.\. (ignored|skipped)' "$out/deno.txt" || true)
# A runner that crashed before its summary counts as one failure, so a broken run is never green.
[ "$bun_rc" -ne 0 ] && [ "${bun_fail:-0}" -eq 0 ] && bun_fail=1
[ "$deno_rc" -ne 0 ] && [ "${deno_fail:-0}" -eq 0 ] && deno_fail=1
passed=$((bun_pass + deno_pass + doc_pass))
failed=$((bun_fail + deno_fail + doc_fail + check_fail))
skipped=$((bun_skip + deno_skip))
echo "bun: $bun_pass passed, $bun_fail failed, $bun_skip skipped; deno: $deno_pass passed, $deno_fail failed, $deno_skip skipped; doc examples: $doc_pass passed, $doc_fail failed; $skipped skipped in all"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
