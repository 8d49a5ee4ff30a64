#!/bin/sh
# Start Redis with the password of the redis_password secret.
#
#   redis-with-password.sh docker-entrypoint.sh redis-server /usr/local/etc/redis/redis.conf
#
# runs the given command with "-" appended, so redis-server reads one more
# configuration line, "requirepass <password>", from stdin: the password is
# never in a file of the image, in the command line or in the environment.
# REDIS_PASSWORD_FILE names the secret (default /run/secrets/redis_password).
set -eu
file="${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}"
if [ ! -r "$file" ]; then
    echo "redis-with-password.sh: cannot read $file (the redis_password secret)" >&2
    exit 2
fi
password="$(cat "$file")"
case "$password" in
    "" | *[!A-Za-z0-9._~-]*)
        echo "redis-with-password.sh: $file must hold one URL-safe password" \
            "(letters, digits and . _ ~ -)" >&2
        exit 2
        ;;
esac
exec "$@" - <<CONFIG
requirepass "$password"
CONFIG
