#!/usr/bin/env bash
# The main job on the example cookbook, from a fresh Debian machine: start a Docker engine, a
# registry on 127.0.0.1:5000 and a busybox base image (scripts/services.sh), build cookbook, then
# validate, plan, apply `cookbooks/shop` to that registry twice (the second run builds nothing),
# verify what was published, deploy it to the `dev` stage of its `local` site (the same engine:
# db, then api, then web and worker, each wave healthy before the next) and print its status.
# The services and the deployed containers stay up; `bash scripts/services.sh down` stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh up
eval "$(bash scripts/services.sh env)"
cargo build --release --locked --quiet
cookbook() { "${CARGO_TARGET_DIR:-target}/release/cookbook" "$@"; }
F=cookbooks/shop/cookbook.json
set -x
cookbook -f "$F" validate
cookbook -f "$F" plan
cookbook -f "$F" hash
cookbook -f "$F" apply
cookbook -f "$F" apply
cookbook -f "$F" verify --registry
cat cookbooks/shop/cookbook.lock
cookbook -f "$F" deploy --site local --stage dev
cookbook -f "$F" status --site local --stage dev
