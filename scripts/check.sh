#!/usr/bin/env bash
# Type checks, offline: deno check (Deno's types) and tsc with bun-types plus `deno types` output.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
mkdir -p node_modules/.cache
deno types > node_modules/.cache/deno.d.ts
NO_COLOR=1 deno check -q mod.ts src/cli.ts test/*.ts scripts/*.ts
tsc -p tsconfig.json
# The formatter, checked on the whole tree.
FORMATTED="mod.ts src ffi test scripts" # every file: deno fmt, 120 columns (deno.json)
NO_COLOR=1 deno fmt --check -q $FORMATTED
