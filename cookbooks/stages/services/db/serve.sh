#!/bin/sh
# A stand-in database: answers every TCP connection on 5432 with one line.
while true; do echo "db ${DB_NAME:-shop} ready" | nc -l -p 5432; done
