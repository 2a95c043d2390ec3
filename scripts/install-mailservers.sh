#!/usr/bin/env bash
# Install the Debian packages of Dovecot, Postfix and rspamd that the integration
# tests start as private, throwaway instances (tests/integration/mailservers.py).
#
# As root on Debian: installs what is missing, non-interactively, then stops and
# disables the system-wide services so that nothing of ours listens on the
# standard ports (25, 143, 110, 11332-11334, ...) and the tests' instances own their ports.
# Anywhere else: prints what is missing and exits 0 (the tests then skip, or
# fail under CI=true).
set -euo pipefail

PACKAGES=(
  dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sqlite dovecot-pgsql
  postfix postfix-sqlite postfix-pgsql
  # The list-policy service (who may post to a list) reads PostgreSQL with it.
  python3-psycopg2
  # Postfix's milter: DKIM signing, SPF/DKIM/DMARC checks, spam score (rspamd 3.4 on Debian 12).
  rspamd
  # Dovecot's Sieve (Pigeonhole): spam rspamd marked is filed into the mailbox's Junk folder.
  dovecot-sieve
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  # "install ok installed" is the only state in which the package's files are all there.
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-mailservers: Dovecot, Postfix and rspamd packages already installed."
elif [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null; then
  echo "install-mailservers: missing ${missing[*]}; run this script as root on Debian to install them."
  echo "install-mailservers: the mail-server integration tests will be skipped (they fail under CI=true)."
  exit 0
else
  echo "install-mailservers: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # "No configuration": Postfix's package must not write a main.cf of its own nor
  # start a system MTA; every instance we run is configured by `flask mailserver config`.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string localhost" | debconf-set-selections
  # Installing must not start the system daemons on the standard ports (the package
  # scripts honour policy-rc.d); removed again below whatever happens.
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

  # What we just installed must not run as system services: the tests start
  # their own instances on loopback high ports, and an operator enables the
  # production services deliberately, with the rendered configuration. (Services
  # that were installed before this script ran are the machine owner's: left alone.)
  for service in dovecot postfix rspamd; do
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now "$service" >/dev/null 2>&1 || true
    else
      # No systemd (a container): stop a daemon the package may have started
      # and keep it from starting at boot.
      service "$service" stop >/dev/null 2>&1 || true
      update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
  done
fi

echo "install-mailservers: done."
