#!/bin/sh
# The API: busybox httpd running CGI scripts; its visit counter lives in the persistent volume.
set -eu
mkdir -p /var/lib/gallery
exec httpd -f -p 9000 -h /srv/api
