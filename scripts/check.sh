#!/usr/bin/env bash
# Type checks, offline: deno check (Deno's types) and tsc with bun-types plus `deno types` output.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
mkdir -p node_modules/.cache
deno types > node_modules/.cache/deno.d.ts
NO_COLOR=1 deno check -q mod.ts src/cli.ts test/*.ts scripts/*.ts
tsc -p tsconfig.json
# deno fmt (deno.json's "fmt": 120 columns) on the files formatted so far: widen the list as files are formatted.
FORMATTED="src/cli/option_table.ts src/cli/option_values.ts src/cli/options.ts src/cli/usage.ts src/cli/suggest.ts src/settings.ts src/start_inputs.ts src/cli/remembered.ts scripts/readme-options.ts test/option_paths.test.ts test/option_table.test.ts test/fixtures/port_env.ts"
NO_COLOR=1 deno fmt --check -q $FORMATTED
