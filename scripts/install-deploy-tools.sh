#!/usr/bin/env bash
# Install what tests/deploy checks the shipped deploy/ files with: nginx (`nginx -t` on
# the site), openssl (a throwaway certificate), psql (the mail servers' role script)
# and systemd-analyze (the unit files).
#
# As root on Debian: installs what is missing, non-interactively, and leaves the
# system-wide nginx stopped and disabled (the test runs `nginx -t` only, on its own
# configuration; nothing of ours listens on 80 or 443).
# Anywhere else: prints what is missing and exits 0 (the tests then skip, or fail
# under CI=true).
set -euo pipefail

declare -A PROVIDES=([nginx]=nginx [openssl]=openssl [psql]=postgresql-client [systemd-analyze]=systemd)

missing=()
for tool in "${!PROVIDES[@]}"; do
  # nginx lives in /usr/sbin, which a non-root PATH may lack.
  if ! command -v "$tool" >/dev/null && [ ! -x "/usr/sbin/$tool" ]; then
    missing+=("${PROVIDES[$tool]}")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deploy-tools: nginx, openssl, psql and systemd-analyze already installed."
elif [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null; then
  echo "install-deploy-tools: missing ${missing[*]}; run this script as root on Debian to install them."
  echo "install-deploy-tools: the checks of deploy/ will be skipped (they fail under CI=true)."
  exit 0
else
  echo "install-deploy-tools: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Installing must not start a system nginx on port 80 (the package scripts honour
  # policy-rc.d); removed again below whatever happens.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" nginx "* ]]; then
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now nginx >/dev/null 2>&1 || true
    else
      service nginx stop >/dev/null 2>&1 || true
      update-rc.d nginx disable >/dev/null 2>&1 || true
    fi
  fi
fi

echo "install-deploy-tools: done."
