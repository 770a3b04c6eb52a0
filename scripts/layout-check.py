#!/usr/bin/env python3
"""The layout rules of issue 9, checked: no file in src/ or ffi/ over 300 lines, no function over 60 (any
signature: a body is a `{` after `=>` or after a parameter list and its return type), no import cycle (type-only
imports included), nothing outside ffi/ touching bun:ffi or Deno.dlopen, and (issue 19) no line in src/, ffi/ or
mod.ts longer than the formatter's 120 columns (deno fmt leaves long strings and comments alone). Prints each
breach; exits 1 if any."""
import os, re, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONTROL = re.compile(r"\b(if|for|while|switch|catch|with)\s*$")
OPENERS, CLOSERS = "([{", ")]}"
# Words no return type holds: seen between a `)` and a `{`, they mean the `)` belongs to an earlier statement.
DECLARATION = re.compile(r"\b(class|interface|export|function|const|let|var|enum|implements|namespace|declare)\b")

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

def match_back(text, i):
    """Index of the bracket opening the one that closes at text[i], or -1."""
    depth = 0
    for j in range(i, -1, -1):
        if text[j] in CLOSERS: depth += 1
        elif text[j] in OPENERS:
            depth -= 1
            if depth == 0: return j
    return -1

def is_function_body(text, brace):
    """Whether the `{` at `brace` opens a function body: it follows `=>`, or a parameter list `(…)` (not of
    if/for/while/switch/catch) with at most a return type between, whatever braces that type holds."""
    j = brace - 1
    while j >= 0 and text[j].isspace(): j -= 1
    if text[j - 1:j + 1] == "=>": return True
    # Walk back over the return type (balanced groups and words) to the `)` closing the parameters.
    while j >= 0:
        c = text[j]
        if c == ")":
            between = text[j + 1:brace].strip()
            if between and not between.startswith(":"): return False
            # A brace that is part of the return type (`: {`, `: Promise<{`, `: A | {`) is not the body.
            angles = between.replace("=>", "").count("<") - between.replace("=>", "").count(">")
            if between and (between[-1] in ":|&<,(" or angles != 0 or DECLARATION.search(between)): return False
            opening = match_back(text, j)
            return opening >= 0 and not CONTROL.search(text[:opening])
        if c in "]}":
            j = match_back(text, j) - 1
            if j < -1: return False
            continue
        if c in ";{(=," and text[j - 1:j + 1] != "=>": return False
        j -= 1
    return False

def functions_over(path, limit):
    text = "\n".join(code_lines(open(path).read()))
    line_of = lambda i: text.count("\n", 0, i) + 1
    stack, found = [], []
    for i, ch in enumerate(text):
        if ch == "{": stack.append((i, is_function_body(text, i)))
        elif ch == "}" and stack:
            start, is_func = stack.pop()
            length = line_of(i) - line_of(start) + 1
            if is_func and length > limit: found.append((line_of(start), length))
    return found

def imports(path):
    deps = []
    # Type-only imports count too: a cycle of types is still a cycle in the design.
    for m in re.finditer(r'^(?:import|export)[^;]*?from\s+"(\.[^"]+)"', open(path).read(), re.M):
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
WIDTH = 120  # deno.json's fmt.lineWidth
for f in files + [os.path.join(ROOT, "mod.ts")]:
    for number, line in enumerate(open(f).read().split("\n"), 1):
        if len(line) > WIDTH: breaches.append(f"{os.path.relpath(f, ROOT)}:{number}: {len(line)} columns (at most {WIDTH})")
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
