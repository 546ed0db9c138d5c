#!/usr/bin/env python3
"""Counts the lines of every function in src/ outside tests.

Usage: python3 scripts/fn-lengths.py [--over N] [--list]

A function's length runs from its `fn` line to its closing brace, both included. Test code is
left out: files named tests.rs or under a tests/ folder, and `#[cfg(test)]` modules. Strings,
characters and comments are skipped when braces are matched, so a `{` inside a string or a
format argument does not count. It prints how many functions are over 60 and over 100 lines
(and, with --list, each of them, longest first).
"""
import os
import re
import sys

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")


def strip(text):
    """The text with strings, chars and comments blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|\\x..|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def block_end(lines, start):
    """The index of the line that closes the first `{` at or after line `start`, or None."""
    depth, opened = 0, False
    for k in range(start, len(lines)):
        for ch in lines[k]:
            if ch == "{":
                depth, opened = depth + 1, True
            elif ch == "}":
                depth -= 1
                if opened and depth == 0:
                    return k
            elif ch == ";" and not opened and depth == 0:
                return None  # a declaration without a body
    return None


def functions(path):
    with open(path, encoding="utf-8") as f:
        lines = strip(f.read()).split("\n")
    skip = set()
    for k, line in enumerate(lines):
        if line.strip().startswith("#[cfg(test)]"):
            end = block_end(lines, k + 1)
            if end is not None:
                skip.update(range(k, end + 1))
    for k, line in enumerate(lines):
        m = FN.match(line)
        if not m or k in skip:
            continue
        end = block_end(lines, k)
        if end is not None:
            yield m.group(7), k + 1, end - k + 1


def main():
    args = sys.argv[1:]
    listing = "--list" in args
    found = []
    for root, _, files in os.walk("src"):
        if "/tests" in root + "/" and root.split(os.sep)[-1] == "tests":
            continue
        for name in sorted(files):
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            path = os.path.join(root, name)
            for fn, line, length in functions(path):
                found.append((length, f"{path}:{line}", fn))
    found.sort(reverse=True)
    over60 = [f for f in found if f[0] > 60]
    over100 = [f for f in found if f[0] > 100]
    print(f"functions: {len(found)}; over 60 lines: {len(over60)}; over 100 lines: {len(over100)}")
    if listing:
        for length, place, fn in over60:
            print(f"{length:5} {place} {fn}")


if __name__ == "__main__":
    main()
