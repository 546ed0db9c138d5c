#!/usr/bin/env bash
# Engine-less builds (issue 11, item 4), measured side by side in one run against the real
# engine and registry that scripts/services.sh starts. Prints medians and the ratio.
#
# One generated container without build commands, FROM the busybox test image (pushed to the
# test registry first, so that the run without an engine can read it there), whose
# application is a tree of FILES files (SIZE_KB KiB each). Each timed run publishes into a new
# repository, so nothing is cached:
#   a. `cookbook apply`            — assembled (no engine build), pushed through the registry API
#   b. `docker build` + `docker push` of the same generated Dockerfile and context (the classic
#      builder, no cache), into a new repository too: what an engine build of it costs
#   c. `cookbook apply` with DOCKER_HOST pointing at a closed port: the same, with no engine
# The ratio a/b is the figure; docs/BENCHMARKS.md ("Engine-less builds") records it.
#
#   RUNS=5 FILES=2000 SIZE_KB=16 bash scripts/bench-assemble.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
bash scripts/services.sh up >&2
eval "$(bash scripts/services.sh env)"
BIN=${COOKBOOK_BIN:-}
if [[ -z $BIN ]]; then
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/cookbook
fi
RUNS=${RUNS:-5} FILES=${FILES:-2000} SIZE_KB=${SIZE_KB:-16}
WORK=$(mktemp -d /tmp/cookbook-bench-assemble.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export CI=true

BASE=$COOKBOOK_TEST_REGISTRY/benchasm-base/busybox:1
docker tag cookbook-test/busybox:latest "$BASE" && docker push -q "$BASE" >/dev/null
mkdir -p "$WORK/book/site"
python3 - "$WORK/book/site" "$FILES" "$SIZE_KB" <<'EOF'
import os, sys
root, files, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) * 1024
for i in range(files):
    d = os.path.join(root, f"d{i % 50:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.txt"), "wb") as f:
        f.write(os.urandom(size // 2).hex().encode()[:size])
EOF
cat > "$WORK/book/cookbook.json" <<EOF
{ "manifest_version": "1.0", "project": { "name": "benchasm" },
  "applications": { "site": { "source": "site", "run_command": "httpd -f -p 80 -h /srv/site" } },
  "containers": { "site": { "base_image": "BASE", "applications": ["site"], "ports": [80] } },
  "packaging": { "registry": "REGISTRY" } }
EOF
sed -i "s#REGISTRY#$COOKBOOK_TEST_REGISTRY/benchasm-0#; s#BASE#$BASE#" "$WORK/book/cookbook.json"
# The generated Dockerfile and context, for the engine's build of the same image.
"$BIN" -f "$WORK/book/cookbook.json" context site -o "$WORK/context.tar"
du -sh "$WORK/book/site" >&2

# Every timed run gets a new repository: a counter file bumped by --prepare.
echo 0 > "$WORK/n"
NEXT="n=\$((\$(cat $WORK/n)+1)); echo \$n > $WORK/n; sed -i -E \"s#benchasm-[0-9]+#benchasm-\$n#\" $WORK/book/cookbook.json; rm -f $WORK/book/cookbook.lock"
CLOSED=tcp://127.0.0.1:9
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$WORK/r.json" \
  --prepare "bash -c '$NEXT'" \
  -n assembled "$BIN -f $WORK/book/cookbook.json apply" \
  -n "docker build + push" "bash -c 'r=$COOKBOOK_TEST_REGISTRY/benchasm-\$(cat $WORK/n)/site:x; docker build -q --no-cache -t \$r - < $WORK/context.tar >/dev/null && docker push -q \$r >/dev/null'" \
  -n "assembled, no engine" "env DOCKER_HOST=$CLOSED $BIN -f $WORK/book/cookbook.json apply" >&2
python3 - "$WORK/r.json" <<'EOF'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
a, d, n = r["assembled"], r["docker build + push"], r["assembled, no engine"]
print(f"assembled (apply, push)        {a*1000:8.0f} ms")
print(f"docker build --no-cache + push {d*1000:8.0f} ms")
print(f"assembled with no engine       {n*1000:8.0f} ms")
print(f"ratio assembled / docker       {a/d:8.2f}")
EOF
