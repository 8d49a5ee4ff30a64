#!/bin/sh
# Export Persona's secrets from compose secret files, then run the command.
#
# The service reads its secrets from environment variables only. This wrapper
# (the persona and archiver containers' entrypoint) turns each file under
# $SECRETS_DIR (default /run/secrets) into the variable the service reads:
#
#   cookie_secrets  -> PERSONA_COOKIE_SECRETS
#   customer_id_key -> PERSONA_CUSTOMER_ID_KEY
#   site_secrets    -> PERSONA_SITE_SECRETS
#   api_keys        -> PERSONA_API_KEYS
#   redis_password  -> the password of PERSONA_REDIS_URL
#                      (redis://redis:6379/0 becomes redis://:<password>@redis:6379/0)
#
# A file that is not there leaves its variable as it is. The command is then
# exec'd, so it is PID 1 and receives SIGTERM itself.
set -eu
dir="${SECRETS_DIR:-/run/secrets}"

read_secret() {
    # $1: file name; prints its content (trailing newlines dropped)
    cat "$dir/$1"
}

for name in cookie_secrets customer_id_key site_secrets api_keys; do
    if [ -f "$dir/$name" ]; then
        value="$(read_secret "$name")"
        var="PERSONA_$(echo "$name" | tr '[:lower:]' '[:upper:]')"
        export "$var=$value"
    fi
done

if [ -f "$dir/redis_password" ]; then
    password="$(read_secret redis_password)"
    case "$password" in
        "" | *[!A-Za-z0-9._~-]*)
            echo "secrets-to-env.sh: $dir/redis_password must hold one URL-safe password" \
                "(letters, digits and . _ ~ -)" >&2
            exit 2
            ;;
    esac
    url="${PERSONA_REDIS_URL:?secrets-to-env.sh: set PERSONA_REDIS_URL, e.g. redis://redis:6379/0}"
    scheme="${url%%://*}"
    rest="${url#*://}"
    case "$rest" in
        *@*)
            echo "secrets-to-env.sh: PERSONA_REDIS_URL already holds credentials;" \
                "remove them or the redis_password secret" >&2
            exit 2
            ;;
    esac
    export PERSONA_REDIS_URL="$scheme://:$password@$rest"
fi

exec "$@"
