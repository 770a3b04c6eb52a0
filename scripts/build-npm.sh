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
# tsc wraps a dynamic import of anything but a literal in __rewriteRelativeImportExtension(); the built
# executable's import of its entry must stay plain, so Bun sees the path --define gives it and bundles the entry.
sed -i 's/import(__rewriteRelativeImportExtension(DAEMONIC_ENTRY))/import(DAEMONIC_ENTRY)/' dist/src/build_main.js
grep -q 'import(DAEMONIC_ENTRY)' dist/src/build_main.js || { echo "build-npm: dist/src/build_main.js does not import DAEMONIC_ENTRY plainly" >&2; exit 1; }
