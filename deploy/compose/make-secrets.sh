#!/bin/sh
# Create the stack's secret files: one random URL-safe value (64 characters) per
# file, in deploy/compose/secrets/ or the folder given as $1.
#
# An existing, non-empty file is kept, so running it again only adds what is
# missing. The folder is 0700 (the host's other users cannot read it); the files
# are 0644 because compose bind-mounts them into containers whose users
# (persona 10001, redis 999, grafana 472, the exporter 59000) must read them.
set -eu
dir="${1:-$(dirname "$0")/secrets}"
mkdir -p "$dir"
chmod 700 "$dir"
for name in cookie_secrets customer_id_key site_secrets api_keys redis_password \
    grafana_admin_password; do
    file="$dir/$name"
    if [ ! -s "$file" ]; then
        head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$file.tmp"
        mv "$file.tmp" "$file"
        echo "created $file"
    fi
    chmod 644 "$file"
done
