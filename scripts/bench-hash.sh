#!/usr/bin/env bash
# Hashing and context benchmarks, measured side by side in one run (issue 3, "Benchmarks").
#
# Generates (once, cached under $BENCH_DIR, default /tmp/cookbook-bench) cookbook-shaped trees:
#   big    1 GiB in 20,000 files of varied sizes (seeded pseudo-random bytes, lognormal sizes)
#   small  100,000 small files (0–4 KiB) in nested directories
#   huge   a 2 GiB context: two hard-linked copies of `big` (no extra disk for the tree itself)
# Each has a cookbook.json with one Dockerfile-based container whose context is the tree, so
# `cookbook hash` hashes exactly the files that `find`, `tar` and `git` see.
#
# Then, with the page cache warm for every command (two untimed warm-up rounds), it compares:
#   cold `cookbook hash` (empty stat cache per run)  vs  find | xargs -P2 openssl dgst -sha256
#                                                    vs  tar --sort=name -cf - . | sha256sum
#   warm `cookbook hash` (stat cache populated)      vs  git status --porcelain (tree committed)
#   peak RSS of `cookbook context CONTAINER -o FILE` on the 2 GiB context
# and prints medians and ratios. Targets: cold ≤ 1.15× openssl, ≥ 5× faster than tar,
# warm ≤ 1.0× git status, peak RSS < 100 MiB. With BENCH_STRICT=1 a missed target exits 1.
#
# Commands are timed in interleaved rounds (scripts/bench-interleaved.py: each round runs every
# command once, in rotating order; medians of wall time, means of user+sys CPU), so that drifting
# load from other work on the machine hits all of them alike.
# Needs: GNU time (apt-get install -y time), python3,
# git, openssl, GNU tar. Environment: BENCH_DIR, BENCH_RUNS (default 5), BENCH_STRICT.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/cookbook-bench}"
RUNS="${BENCH_RUNS:-5}"
STRICT="${BENCH_STRICT:-0}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/cookbook"

for tool in python3 git openssl tar sha256sum; do
    command -v "$tool" >/dev/null || { echo "bench-hash: $tool is required" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "bench-hash: GNU time (/usr/bin/time) is required: apt-get install -y time" >&2; exit 2; }

echo "== building (cargo build --release)" >&2
(cd "$ROOT" && cargo build --release --quiet)

mkdir -p "$BENCH_DIR"

# --- tree generation (deterministic, cached) -------------------------------------------------
gen_tree() { # name kind
    local name="$1" kind="$2" dir="$BENCH_DIR/$1"
    if [ -f "$dir/.complete" ]; then
        return
    fi
    echo "== generating $name tree under $dir (once)" >&2
    rm -rf "$dir"
    mkdir -p "$dir/tree"
    python3 - "$dir/tree" "$kind" <<'PY'
import os, random, sys
root, kind = sys.argv[1], sys.argv[2]
r = random.Random(20261121 if kind == "big" else 4242)

def write(path, size, executable):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(r.randbytes(n))
            left -= n
    if executable:
        os.chmod(path, 0o755)

if kind == "big":
    # 20,000 files, lognormal sizes (median ~17 KiB, a few of several MiB) scaled to 1 GiB total.
    count, total = 20_000, 1 << 30
    weights = [r.lognormvariate(0.0, 1.5) for _ in range(count)]
    scale = total / sum(weights)
    sizes = [int(w * scale) for w in weights]
    sizes[-1] += total - sum(sizes)
    for i, size in enumerate(sizes):
        path = os.path.join(root, f"pkg{i % 40:02d}", f"mod{(i // 40) % 10}", f"file{i:05d}.bin")
        write(path, size, i % 50 == 0)
else:
    # 100,000 small files (0-4 KiB) in a 10 x 10 x 10 directory tree, 100 files per leaf.
    for i in range(100_000):
        path = os.path.join(root, f"a{i % 10}", f"b{(i // 10) % 10}", f"c{(i // 100) % 10}",
                            f"src{i:06d}.txt")
        write(path, r.randint(0, 4096), i % 50 == 0)

with open(os.path.join(root, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY . /srv/\n")
PY
    write_cookbook "$name"
    echo "== committing $name tree to a git repository (for the git status comparison)" >&2
    local git=(git --git-dir="$dir/git" --work-tree="$dir/tree")
    "${git[@]}" init -q
    "${git[@]}" config core.compression 0
    "${git[@]}" config user.email bench@example.invalid
    "${git[@]}" config user.name bench
    "${git[@]}" config gc.auto 0
    (cd "$dir/tree" && "${git[@]}" add -A && "${git[@]}" commit -q -m tree)
    touch "$dir/.complete"
}

write_cookbook() { # name
    cat >"$BENCH_DIR/$1/cookbook.json" <<EOF
{
  "manifest_version": "1.0",
  "project": { "name": "bench-$1" },
  "containers": {
    "$1": { "dockerfile": "tree/Dockerfile", "context": "tree" }
  }
}
EOF
}

gen_huge() { # 2 GiB context: two hard-linked copies of big/tree
    local dir="$BENCH_DIR/huge"
    if [ -f "$dir/.complete" ]; then
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir/tree"
    cp -al "$BENCH_DIR/big/tree" "$dir/tree/copy1"
    cp -al "$BENCH_DIR/big/tree" "$dir/tree/copy2"
    rm "$dir/tree/copy1/Dockerfile" "$dir/tree/copy2/Dockerfile"
    printf 'FROM scratch\nCOPY . /srv/\n' >"$dir/tree/Dockerfile"
    write_cookbook huge
    touch "$dir/.complete"
}

gen_tree big big
gen_tree small small
gen_huge

# The stat cache trusts only entries hashed at least 1 s after the file's mtime/ctime (racy-git
# rule): make sure that second has passed since generation before populating warm caches.
sleep 1.1

# --- measurements ------------------------------------------------------------------------------
RESULTS="$BENCH_DIR/results"
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
# Other work on the machine shows in wall-clock times: record the load around the measurements.
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/load-before.txt"

for name in big small; do
    dir="$BENCH_DIR/$name"
    cold="$dir/cache-cold"
    warm="$dir/cache-warm"
    rm -rf "$warm"
    # Populate the warm cache (at least 1 s after generation), then verify it is used.
    COOKBOOK_CACHE_DIR="$warm" "$BIN" -f "$dir/cookbook.json" hash >"$RESULTS/$name.hash"
    COOKBOOK_CACHE_DIR="$warm" "$BIN" -f "$dir/cookbook.json" hash | cmp -s - "$RESULTS/$name.hash" \
        || { echo "bench-hash: warm and cold hashes differ for $name" >&2; exit 1; }
    # Refresh git's index stat data so `git status` does not re-hash racily clean entries.
    git --git-dir="$dir/git" --work-tree="$dir/tree" status --porcelain >/dev/null
    echo "== $name: $(cat "$RESULTS/$name.hash")" >&2
    echo "== $name: cold (interleaved rounds)" >&2
    python3 "$ROOT/scripts/bench-interleaved.py" "$RESULTS/$name-cold.json" "$dir/tree" 2 "$RUNS" \
        "rm -rf '$cold' && mkdir -p '$cold'" \
        "cookbook-cold=COOKBOOK_CACHE_DIR='$cold' '$BIN' -f '$dir/cookbook.json' hash" \
        "openssl-P2=find . -type f -print0 | xargs -0 -P2 -n 500 openssl dgst -sha256" \
        "tar-sha256sum=tar --sort=name -cf - . | sha256sum"
    echo "== $name: warm (interleaved rounds)" >&2
    python3 "$ROOT/scripts/bench-interleaved.py" "$RESULTS/$name-warm.json" "$dir/tree" 2 "$((RUNS * 2))" "" \
        "cookbook-warm=COOKBOOK_CACHE_DIR='$warm' '$BIN' -f '$dir/cookbook.json' hash" \
        "git-status=git --git-dir='$dir/git' --work-tree='$dir/tree' status --porcelain"
done

echo "== peak memory: cookbook context on the 2 GiB context" >&2
huge="$BENCH_DIR/huge"
rm -rf "$huge/cache" "$huge/context.tar"
/usr/bin/time -v -o "$RESULTS/huge-time.txt" env COOKBOOK_CACHE_DIR="$huge/cache" \
    "$BIN" -f "$huge/cookbook.json" context huge -o "$huge/context.tar" 2>"$RESULTS/huge-stderr.txt"
stat -c %s "$huge/context.tar" >"$RESULTS/huge-size.txt"
rm -f "$huge/context.tar"
cut -d' ' -f1-3 /proc/loadavg >"$RESULTS/load-after.txt"

python3 - "$RESULTS" "$STRICT" <<'PY'
import json, os, re, sys
res, strict = sys.argv[1], sys.argv[2] == "1"

def medians(path):
    data = json.load(open(path))["results"]
    return {r["command"]: r["median"] for r in data}

def cpu(path):
    """Mean user + system CPU seconds per run (what the command costs, whatever else runs)."""
    data = json.load(open(path))["results"]
    return {r["command"]: r["user"] + r["system"] for r in data}

rows, missed, cpu_rows = [], [], []
def check(label, ok, text):
    rows.append(f"  {'ok  ' if ok else 'MISS'} {label}: {text}")
    if not ok:
        missed.append(label)

load = (open(f"{res}/load-before.txt").read().strip(), open(f"{res}/load-after.txt").read().strip())
print("\nHashing and contexts (page cache warm for every command; wall = median of runs,")
print(f"cpu = mean user+sys per run; load average before/after: {load[0]} / {load[1]})")
print(f"{'tree':<6} {'command':<14} {'wall s':>8} {'cpu s':>8}")
for name in ("big", "small"):
    cold, warm = medians(f"{res}/{name}-cold.json"), medians(f"{res}/{name}-warm.json")
    cpus = {**cpu(f"{res}/{name}-cold.json"), **cpu(f"{res}/{name}-warm.json")}
    for k, v in list(cold.items()) + list(warm.items()):
        print(f"{name:<6} {k:<14} {v:>8.3f} {cpus[k]:>8.3f}")
    r1 = cold["cookbook-cold"] / cold["openssl-P2"]
    r2 = cold["tar-sha256sum"] / cold["cookbook-cold"]
    r3 = warm["cookbook-warm"] / warm["git-status"]
    check(f"{name} cold vs openssl -P2", r1 <= 1.15, f"{r1:.2f}x the time (target <= 1.15)")
    check(f"{name} cold vs tar|sha256sum", r2 >= 5, f"{r2:.1f}x faster (target >= 5)")
    check(f"{name} warm vs git status", r3 <= 1.0, f"{r3:.2f}x the time (target <= 1.00)")
    cpu_rows.append(
        f"  {name}: cpu cold/openssl {cpus['cookbook-cold'] / cpus['openssl-P2']:.2f}, "
        f"tar/cold {cpus['tar-sha256sum'] / cpus['cookbook-cold']:.1f}, "
        f"warm/git {cpus['cookbook-warm'] / cpus['git-status']:.2f}"
    )

text = open(f"{res}/huge-time.txt").read()
rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
size = int(open(f"{res}/huge-size.txt").read())
print(f"huge   context -o FILE  {size / 2**30:.2f} GiB tar in {wall}, peak RSS {rss_kib / 1024:.1f} MiB")
check("context peak RSS", rss_kib < 100 * 1024, f"{rss_kib / 1024:.1f} MiB (target < 100)")
print("\nRatios (wall-clock medians; these are the targets)")
print("\n".join(rows))
print("CPU-time ratios (for reference: less sensitive to other load on the machine)")
print("\n".join(cpu_rows))
if missed:
    print(f"\n{len(missed)} target(s) missed", file=sys.stderr)
    sys.exit(1 if strict else 0)
PY
