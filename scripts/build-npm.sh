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
# The command itself (package.json's bin, dist/src/cli.js) bundled into a few chunks: every process a Deno user's
# `deno run npm:daemonic` starts loads ~60 fewer files (10-20 ms each, issue 21). mod.js, the .d.ts files and
# what `daemonic build` compiles stay tsc's; shared state between the copies lives on globalThis (lifecycle.ts).
echo "build-npm: bundling dist/src/cli.js (bun build --splitting)" >&2
bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
bun build dist/src/cli.js --outdir "$bundle" --splitting --format esm --target node --packages external \
  --minify-whitespace --minify-syntax --chunk-naming 'bin/[name]-[hash].[ext]' >/dev/null
mkdir -p dist/src/bin
mv "$bundle"/bin/*.js dist/src/bin/
mv "$bundle"/cli.js dist/src/cli.js
