#!/usr/bin/env python3
"""Recompute a cookbook input hash from `cookbook explain` output, independently of cookbook.

Usage: cookbook explain CONTAINER | python3 scripts/recompute-hash.py

RFC 8785 (JCS) for these documents is exactly Python's json.dumps with sorted keys, no
whitespace and UTF-8 output: every key is ASCII (so code-point order is UTF-16 order) and every
number is a non-negative integer. Prints "ok <hash>" when the document's input_hash matches,
else "MISMATCH <stated> <computed>" and exits 1.
"""
import hashlib
import json
import sys

doc = json.load(sys.stdin)
stated = doc.pop("input_hash")
canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
computed = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
if computed == stated:
    print(f"ok {computed}")
else:
    print(f"MISMATCH {stated} {computed}")
    sys.exit(1)
