/**
 * Writes the README's tables generated from src/cli/option_table.ts: the options (between the `options-table`
 * markers) and which path applies which (`option-paths`); test/option_table.test.ts fails until it is run
 * after a change to the table.
 *
 *   bun scripts/readme-options.ts
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { optionsMarkdown, pathsMarkdown } from "../src/cli/usage.ts";

const README = join(dirname(fileURLToPath(import.meta.url)), "..", "README.md");
let text = readFileSync(README, "utf8");
for (const [marker, table] of [["options-table", optionsMarkdown()], ["option-paths", pathsMarkdown()]]) {
  const block = new RegExp(`(<!-- ${marker}: .*? -->)[\\s\\S]*?(<!-- /${marker} -->)`);
  if (!block.test(text)) throw new Error(`README.md has no ${marker} markers`);
  text = text.replace(block, `$1\n${table}\n$2`);
}
writeFileSync(README, text);
