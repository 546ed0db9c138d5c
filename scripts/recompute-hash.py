#!/usr/bin/env python3
"""Recompute a cookbook input hash from `cookbook explain` output, independently of cookbook.

Usage: cookbook explain CONTAINER | python3 scripts/recompute-hash.py [--lock cookbook.lock]

RFC 8785 (JCS) for these documents is exactly Python's json.dumps with sorted keys, no
whitespace and UTF-8 output: every key is ASCII (so code-point order is UTF-16 order) and every
number is a non-negative integer. The computation is the same for hash_version 1, 2 and 3.

hash_version 2 also covers the pinned base image (docs/REPRODUCIBILITY.md): for a generated
container with an external base, `recipe.base_image.pinned` is the pin (or null before the first
apply pins it), and the generated Dockerfile's FROM line must name exactly the pinned image
(`REF@DIGEST` for a registry pin, the image id for an engine pin). This script checks that, and
with `--lock` that the pin is the one `cookbook.lock` records for the reference.

hash_version 3 also covers a Dockerfile container's external FROM images: its recipe has `bases`
(each image as the Dockerfile's text reads once its ARGs are substituted -> its pin, or null
before the first apply pins it). This script checks that the member is there, and with `--lock`
that every pin is the lock's. (Which images the FROM lines name is read by hand: the recipe's
`dockerfile_text` is the file as written.)

Prints "ok <hash>" when everything holds, else one "MISMATCH …" line per problem and exits 1.
"""
import hashlib
import json
import sys


def from_line(base):
    """The image the FROM line must name for a pinned (or not yet pinned) external base."""
    pin = base.get("pinned")
    if pin is None:
        return base["image"]
    if pin["source"] == "registry":
        return f'{base["image"]}@{pin["digest"]}'
    if pin["source"] == "engine":
        return pin["digest"]
    return base["image"]  # "reference": the reference carries its digest


def main(argv):
    lock = None
    if len(argv) == 2 and argv[0] == "--lock":
        with open(argv[1], encoding="utf-8") as f:
            lock = json.load(f)
    elif argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    doc = json.load(sys.stdin)
    stated = doc.pop("input_hash")
    problems = []
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    computed = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    if computed != stated:
        problems.append(f"MISMATCH {stated} {computed}")
    recipe = doc.get("recipe", {})
    base = recipe.get("base_image") if recipe.get("kind") == "generated" else None
    if doc.get("hash_version", 1) >= 2 and base and "image" in base:
        if "pinned" not in base:
            problems.append("MISMATCH hash_version 2 without base_image.pinned")
        else:
            want = f"FROM {from_line(base)}"
            lines = recipe.get("dockerfile_text", "").splitlines()
            if want not in lines:
                problems.append(f"MISMATCH the Dockerfile does not say `{want}`")
            if lock is not None:
                locked = lock.get("bases", {}).get(base["image"])
                if locked != base["pinned"]:
                    problems.append(
                        f'MISMATCH pin of {base["image"]}: {json.dumps(base["pinned"])} here, '
                        f"{json.dumps(locked)} in the lock"
                    )
    if doc.get("hash_version", 1) >= 3 and recipe.get("kind") == "dockerfile":
        if not isinstance(recipe.get("bases"), dict):
            problems.append("MISMATCH hash_version 3 without recipe.bases")
        elif lock is not None:
            for image, pin in sorted(recipe["bases"].items()):
                locked = lock.get("bases", {}).get(image)
                if locked != pin:
                    problems.append(
                        f"MISMATCH pin of {image}: {json.dumps(pin)} here, "
                        f"{json.dumps(locked)} in the lock"
                    )
    if problems:
        print("\n".join(problems))
        return 1
    print(f"ok {computed}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
