#!/usr/bin/env bash
# What the git-ignored context check costs (docs/BENCHMARKS.md, "The git-ignored context check in
# a repository"): `cookbook hash` on a context in a git work tree whose every tracked file is
# stat-dirty, against the same tree outside any repository, interleaved (scripts/bench-interleaved.py).
#
#   bash scripts/bench-ignored.sh            # release build; COOKBOOK_BIN=… for another binary
#
# Knobs: FILES (20000 tracked files in the context), EXCLUDED (10000 tracked files .dockerignore
# leaves out), RUNS (5), WORK (a temporary directory, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FILES=${FILES:-20000}
EXCLUDED=${EXCLUDED:-10000}
RUNS=${RUNS:-5}
if [[ -z ${COOKBOOK_BIN:-} ]]; then
  cargo build --release --locked --quiet
  COOKBOOK_BIN=$ROOT/target/release/cookbook
fi
WORK=${WORK:-$(mktemp -d)}
trap 'rm -rf "$WORK"' EXIT

tree() { # DIR: the cookbook, its Dockerfile context and the files
  mkdir -p "$1/web/src" "$1/web/data"
  cat >"$1/cookbook.json" <<'JSON'
{"manifest_version": "1.0", "project": {"name": "ignored-bench"},
 "containers": {"web": {"dockerfile": "web/Dockerfile", "context": "web"}}}
JSON
  printf 'FROM scratch\nCOPY src /src\n' >"$1/web/Dockerfile"
  printf 'data/\n' >"$1/web/.dockerignore"
  (cd "$1/web/src" && seq 1 "$FILES" | xargs -n 1000 touch)
  (cd "$1/web/data" && seq 1 "$EXCLUDED" | xargs -n 1000 touch)
}

tree "$WORK/in"
(
  cd "$WORK/in"
  git init -q . && git add -A && git -c user.name=bench -c user.email=bench@localhost commit -qm tree
)
tree "$WORK/out"
# After the last git command (git's CLI would refresh the index): every tracked file stat-dirty.
sleep 1
find "$WORK/in/web" -type f -exec touch {} +

python3 scripts/bench-interleaved.py "$WORK/result.json" "$WORK" 1 "$RUNS" "" \
  "in-repo=cd in && $COOKBOOK_BIN hash" \
  "outside-git=cd out && $COOKBOOK_BIN hash"
python3 - "$WORK/result.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
a, b = r["in-repo"], r["outside-git"]
print(f"hash in a repository (stat-dirty index): median {a['median']:.3f} s")
print(f"hash outside git:                        median {b['median']:.3f} s")
print(f"ratio in-repo / outside-git: {a['median'] / b['median']:.2f}")
PY
