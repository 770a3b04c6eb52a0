#!/usr/bin/env bash
# Builds dist/ for the npm package (run by `npm pack` and `npm publish` as prepack): JavaScript plus .d.ts,
# because Deno refuses to strip types from files under node_modules. Bun runs the same JavaScript.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
echo "build-npm: compiling mod.ts, src/ and ffi/ into dist/ (tsc)" >&2
mkdir -p node_modules/.cache
deno types > node_modules/.cache/deno.d.ts
rm -rf dist
tsc -p scripts/tsconfig.npm.json
