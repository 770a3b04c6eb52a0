/**
 * Writes the README's options table from src/option_table.ts (between its `options-table` markers);
 * test/option_table.test.ts fails until it is run after a change to the table.
 *
 *   bun scripts/readme-options.ts
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { optionsMarkdown } from "../src/usage.ts";

const README = join(dirname(fileURLToPath(import.meta.url)), "..", "README.md");
const text = readFileSync(README, "utf8");
const updated = text.replace(
  /(<!-- options-table: .*? -->)[\s\S]*?(<!-- \/options-table -->)/,
  `$1\n${optionsMarkdown()}\n$2`,
);
if (updated === text && !text.includes(optionsMarkdown())) throw new Error("README.md has no options-table markers");
writeFileSync(README, updated);
