#!/usr/bin/env bash
# The project's one test command (README, .ci/run): provisions what the tests need on a fresh
# Debian machine (Docker engine, registry, git daemon, a FROM-scratch busybox base image), runs
# every test against them, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

bash scripts/services.sh up
trap 'bash scripts/services.sh down' EXIT
eval "$(bash scripts/services.sh env)"

cargo test --locked
