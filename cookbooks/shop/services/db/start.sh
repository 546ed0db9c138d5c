#!/bin/sh
# A stand-in database: answers every connection on 5432 with the schema version.
set -eu
exec nc -ll -p 5432 -e cat /var/lib/db/VERSION
