#!/bin/sh
# The shop API: busybox httpd running CGI scripts from cgi-bin/.
set -eu
exec httpd -f -p "${API_PORT:-8080}" -h /srv/api
