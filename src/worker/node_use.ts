/**
 * Whether an entry may load Node's modules, read from its source and the local files it imports (by `daemonic
 * build` for an executable, which carries no sources): a worker patches node:net and node:http `listen` only
 * then, as importing them costs a Bun worker ~8 ms (node:http) and a Deno worker its Node layer (ffi/_host.ts).
 * `node:`, `npm:`, `jsr:`, URLs, bare specifiers (a package), `require` and an import of a computed specifier
 * all count as "may"; so does a file that cannot be read.
 *
 * @module
 */
import { host, parentDir, resolvePath } from "../../ffi/_host.ts";

const SPECIFIERS = /\b(?:from|import)\s*\(?\s*(["'])([^"']+)\1|\bimport\s*\(\s*[^"'\s]|\brequire\s*\(/g;

/**
 * Whether the entry at `path` (or a local module it imports, at any depth) may import a `node:` module.
 *
 * @example
 * ```ts
 * import { mayUseNode } from "./node_use.ts";
 * const files: Record<string, string> = {
 *   "/app/main.ts": 'import { handler } from "./handler.ts";\nDeno.serve(handler);',
 *   "/app/handler.ts": 'export const handler = () => new Response("ok");',
 *   "/app/node.ts": 'import http from "node:http";',
 * };
 * console.log(mayUseNode("/app/main.ts", (p) => files[p])); // false
 * console.log(mayUseNode("/app/node.ts", (p) => files[p])); // true
 * ```
 */
export function mayUseNode(path: string, read: (path: string) => string = host.readText): boolean {
  const seen = new Set<string>();
  const visit = (file: string): boolean => {
    if (seen.has(file)) return false;
    seen.add(file);
    let source;
    try {
      source = read(file);
    } catch {
      return true;
    }
    if (typeof source !== "string") return true;
    for (const [found, , specifier] of source.matchAll(SPECIFIERS)) {
      if (specifier === undefined) return /require|import/.test(found); // require(), import(computed)
      const local = /^\.{0,2}\//.test(specifier) || specifier.startsWith("file://");
      if (!local) return true;
      const target = specifier.startsWith("file://") ? decodeURI(specifier.slice(7)) : specifier;
      if (visit(resolvePath(parentDir(file), target))) return true;
    }
    return false;
  };
  return visit(path);
}
