#!/usr/bin/env python3
"""The layout rules of issue 9, checked: no file in src/ or ffi/ over 300 lines, no function over 60, no
import cycle, nothing outside ffi/ touching bun:ffi or Deno.dlopen. Prints each breach; exits 1 if any."""
import os, re, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FUNC = re.compile(r"(\bfunction\b[^{]*\{\s*$)|(=>\s*\{\s*$)|(^\s*(async\s+)?(static\s+)?(get\s+|set\s+)?[\w$]+\s*\([^;]*\)\s*(:[^{;]+)?\{\s*$)")
NOT_FUNC = re.compile(r"^\s*(if|for|while|switch|catch|else|try|do|return)\b")

def code_lines(text):
    """Each line with strings, template literals and comments blanked, so braces inside them do not count."""
    out, i, n, mode = [], 0, len(text), None
    buf = []
    while i < n:
        c = text[i]
        if mode is None:
            if text.startswith("//", i):
                j = text.find("\n", i); i = n if j < 0 else j; continue
            if text.startswith("/*", i):
                j = text.find("*/", i); seg = text[i:(n if j < 0 else j + 2)]
                buf.append("".join("\n" if ch == "\n" else " " for ch in seg)); i += len(seg); continue
            if c in "'\"`": mode = c; buf.append(" "); i += 1; continue
            buf.append(c); i += 1; continue
        if c == "\\": buf.append("  " if text[i + 1:i + 2] != "\n" else " \n"); i += 2; continue
        if c == mode: mode = None; buf.append(" "); i += 1; continue
        buf.append("\n" if c == "\n" else " "); i += 1
    return "".join(buf).split("\n")

def functions_over(path, limit):
    lines = code_lines(open(path).read())
    stack, found = [], []
    for no, line in enumerate(lines, 1):
        for ch in line:
            if ch == "{":
                is_func = bool(FUNC.search(line)) and not NOT_FUNC.search(line) and line.rstrip().endswith("{")
                stack.append((no, is_func))
            elif ch == "}" and stack:
                start, is_func = stack.pop()
                if is_func and no - start + 1 > limit: found.append((start, no - start + 1))
    return found

def imports(path):
    deps = []
    for m in re.finditer(r'^(?:import|export)[^;]*?from\s+"(\.[^"]+)"', open(path).read(), re.M):
        if re.match(r"^(import|export)\s+type\b", m.group(0)): continue
        deps.append(os.path.normpath(os.path.join(os.path.dirname(path), m.group(1))))
    return deps

files = [os.path.join(d, f) for top in ("src", "ffi") for d, _, fs in os.walk(os.path.join(ROOT, top)) for f in fs if f.endswith(".ts")]
breaches = []
for f in files:
    rel = os.path.relpath(f, ROOT)
    n = sum(1 for _ in open(f))
    if n > 300: breaches.append(f"{rel}: {n} lines (at most 300)")
    for start, length in functions_over(f, 60): breaches.append(f"{rel}:{start}: a function of {length} lines (at most 60)")
    if not rel.startswith("ffi/") and re.search(r'bun:ffi|Deno\.dlopen', "\n".join(code_lines(open(f).read()))):
        breaches.append(f"{rel}: touches bun:ffi or Deno.dlopen outside ffi/")
graph = {os.path.normpath(f): imports(f) for f in files + [os.path.join(ROOT, "mod.ts")]}
state = {}
def visit(node, path):
    state[node] = "open"
    for dep in graph.get(node, []):
        if state.get(dep) == "open":
            cycle = path[path.index(dep):] + [dep]
            breaches.append("import cycle: " + " → ".join(os.path.relpath(p, ROOT) for p in cycle))
        elif dep not in state: visit(dep, path + [dep])
    state[node] = "done"
for node in graph:
    if node not in state: visit(node, [node])
for b in breaches: print(b)
print(f"layout: {len(files)} files in src/ and ffi/, {len(breaches)} breaches")
sys.exit(1 if breaches else 0)
