#!/bin/sh
# Runs the whole unimail test suite: go vet, staticcheck, and go test -race
# against the in-process servers, and a private Dovecot and a private
# PostgreSQL that the tests start themselves on 127.0.0.1.
#
# When Dovecot or PostgreSQL is missing it installs Debian's
# dovecot-imapd and dovecot-pop3d, or postgresql, with apt-get (as root,
# or through sudo), without letting the packages start a system-wide
# daemon.
set -eu
cd "$(dirname "$0")"

scripts/install-packages.sh dovecot:dovecot-imapd,dovecot-pop3d '/usr/lib/postgresql/*/bin/initdb:postgresql'

export UNIMAIL_REQUIRE_DOVECOT="${UNIMAIL_REQUIRE_DOVECOT:-1}"
export UNIMAIL_REQUIRE_POSTGRES="${UNIMAIL_REQUIRE_POSTGRES:-1}"
export PATH="$PATH:/usr/sbin"

echo "test.sh: go vet" >&2
go vet ./...
echo "test.sh: staticcheck" >&2
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
echo "test.sh: go test -race" >&2
go test -race -timeout 20m ./...
