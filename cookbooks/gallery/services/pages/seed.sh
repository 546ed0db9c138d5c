#!/bin/sh
# The init container: fills the pod's shared `content` volume (mounted at /out) before the web
# server starts, then exits 0 (anything else stops the pod from starting).
set -eu
cp -R /srv/pages/public/. /out/
printf '<!doctype html>\n<title>%s</title>\n<h1>%s</h1>\n<p>Seeded by the init container.</p>\n' \
  "${TITLE:-Gallery}" "${TITLE:-Gallery}" > /out/about.html
