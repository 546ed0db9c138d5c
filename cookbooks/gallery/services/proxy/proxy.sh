#!/bin/sh
# The sidecar: a trivial TCP proxy on 8080 to the web server on the pod's own localhost:80
# (sidecars share the main container's network namespace).
set -eu
exec nc -ll -p 8080 -e nc 127.0.0.1 80
