#!/bin/sh
# The shop worker: built FROM the api image, so it ships the api's scripts too.
set -eu
while :; do
  /srv/api/cgi-bin/orders > /dev/null
  sleep "${WORKER_INTERVAL:-30}"
done
