#!/usr/bin/env bash
# Deploy benchmarks (docs/BENCHMARKS.md, "Deploy"), measured side by side in one run against the
# engine of scripts/services.sh:
#
#   1. an unchanged deploy of `shop` to dev (target: under 1 s): RUNS runs after a first deploy;
#   2. deploying 50 containers in 5 waves (10 per wave, each depending on one of the previous
#      wave, each with an http health check) with `cookbook deploy`, against the engine creating
#      the same 50 containers directly, one wave at a time, each wave waited for until healthy
#      (examples/deploy_direct.rs, through the same API) — target: at most 1.2x. The two sides
#      alternate, RUNS times each, every run from nothing (the previous run's containers removed).
#
# Prints medians and the ratio. Knobs: RUNS (5), COOKBOOK_BIN / DIRECT_BIN (default: release
# builds in target/release, built here).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/services.sh env)"
RUNS=${RUNS:-5}
if [[ -z ${COOKBOOK_BIN:-} || -z ${DIRECT_BIN:-} ]]; then
  cargo build --release --quiet --bin cookbook --example deploy_direct
fi
COOKBOOK_BIN=${COOKBOOK_BIN:-$PWD/target/release/cookbook}
DIRECT_BIN=${DIRECT_BIN:-$PWD/target/release/examples/deploy_direct}
WORK=$(mktemp -d)
PREFIX=bench$$
# The engine's API over its socket (no docker CLI needed): a project's containers, removed.
docker_ps() { curl -s --unix-socket "${DOCKER_HOST#unix://}" "http://x/containers/json?all=1&filters=$(jq -rn --arg p "$1" '{label: ["dev.cookbook.project=" + $p]} | @uri')" | jq -r '.[].Id'; }
docker_rm() { for id in "$@"; do curl -s -o /dev/null -X DELETE --unix-socket "${DOCKER_HOST#unix://}" "http://x/containers/$id?force=1"; done; }
remove_project() { local ids; ids=$(docker_ps "$1"); [[ -z $ids ]] || docker_rm $ids; }
net_rm() { curl -s -o /dev/null -X DELETE --unix-socket "${DOCKER_HOST#unix://}" "http://x/networks/$1"; }
trap 'remove_project $PREFIX-shop; remove_project $PREFIX-fifty; net_rm $PREFIX-shop-dev; net_rm $PREFIX-fifty-dev; rm -rf "$WORK"' EXIT
now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# --- 1. unchanged deploy of shop --------------------------------------------------------------
cp -a cookbooks/shop "$WORK/shop"
rm -rf "$WORK/shop/.cookbook" "$WORK/shop/cookbook.lock"
sed -i "s/\"name\": \"shop\"/\"name\": \"$PREFIX-shop\"/" "$WORK/shop/cookbook.json"
(cd "$WORK/shop" && "$COOKBOOK_BIN" --quiet apply --no-push >/dev/null && "$COOKBOOK_BIN" deploy --site local --stage dev >/dev/null)
unchanged=()
for _ in $(seq "$RUNS"); do
  t0=$(now_ms)
  (cd "$WORK/shop" && "$COOKBOOK_BIN" deploy --site local --stage dev | grep -q ': 0 started, 4 unchanged, 0 removed')
  unchanged+=($(( $(now_ms) - t0 )))
done
remove_project "$PREFIX-shop"

# --- 2. 50 containers in 5 waves --------------------------------------------------------------
mkdir -p "$WORK/fifty/srv"
echo '<p>ok</p>' >"$WORK/fifty/srv/index.html"
jq -n --arg name "$PREFIX-fifty" '
  def c(w; i): "w\(w)-c\(i)";
  {
    manifest_version: "1.1",
    project: { name: $name },
    applications: { svc: { source: "srv", run_command: "httpd -f -p 80 -h /srv/svc" } },
    containers: ([range(1; 6) as $w | range(1; 11) as $i | {
      key: c($w; $i),
      value: ({
        base_image: "cookbook-test/busybox:latest",
        applications: ["svc"],
        health: { http: { port: 80, path: "/index.html" }, interval: "200ms", timeout: "5s", retries: 30 }
      } + (if $w > 1 then { depends_on: [c($w - 1; $i)] } else {} end))
    }] | from_entries),
    lifecycle: { stages: ["dev"] },
    federation: { sites: { local: { target: { docker: { host: "env" } },
                                    containers: [range(1; 11) as $i | c(5; $i)] } } }
  }' >"$WORK/fifty/cookbook.json"
(cd "$WORK/fifty" && "$COOKBOOK_BIN" --quiet apply --no-push >/dev/null)
# Every container's image is its own build of the same recipe: the direct side runs one of them.
image=$(jq -r '.containers["w1-c1"].image_id' "$WORK/fifty/cookbook.lock")
deploys=(); directs=()
for _ in $(seq "$RUNS"); do
  remove_project "$PREFIX-fifty"
  t0=$(now_ms)
  (cd "$WORK/fifty" && "$COOKBOOK_BIN" deploy --site local --stage dev | grep -q ': 50 started, 0 unchanged, 0 removed')
  deploys+=($(( $(now_ms) - t0 )))
  remove_project "$PREFIX-fifty"
  directs+=($("$DIRECT_BIN" "$image" "$PREFIX-direct" 5 10))
done

u=$(printf '%s\n' "${unchanged[@]}" | median)
d=$(printf '%s\n' "${deploys[@]}" | median)
r=$(printf '%s\n' "${directs[@]}" | median)
echo "unchanged deploy of shop (4 containers), ms: ${unchanged[*]}  median $u (target < 1000)"
echo "50 containers in 5 waves, cookbook deploy, ms: ${deploys[*]}  median $d"
echo "50 containers in 5 waves, direct API,      ms: ${directs[*]}  median $r"
awk -v d="$d" -v r="$r" 'BEGIN { printf "ratio cookbook/direct: %.2fx (target <= 1.2x)\n", d / r }'
