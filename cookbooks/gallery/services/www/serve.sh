#!/bin/sh
# The main container: serves what the init container put into the shared volume.
set -eu
exec httpd -f -p 80 -h /var/www
