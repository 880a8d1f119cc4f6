#!/bin/sh
# Runs the whole unimail test suite: go vet, staticcheck, and go test -race
# against the in-process servers and a private Dovecot that the tests start
# themselves on 127.0.0.1.
#
# When Dovecot is missing it installs Debian's dovecot-imapd and
# dovecot-pop3d with apt-get (as root, or through sudo), without letting
# the package start a system-wide daemon on the default ports.
set -eu
cd "$(dirname "$0")"

if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "test.sh: installing dovecot-imapd and dovecot-pop3d with apt-get" >&2
	created_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		# Keep the package from starting the system daemon.
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
		$SUDO chmod 755 /usr/sbin/policy-rc.d
		created_policy=1
	fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends dovecot-imapd dovecot-pop3d >/dev/null
	[ -z "$created_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi

export UNIMAIL_REQUIRE_DOVECOT="${UNIMAIL_REQUIRE_DOVECOT:-1}"
export PATH="$PATH:/usr/sbin"

echo "test.sh: go vet" >&2
go vet ./...
echo "test.sh: staticcheck" >&2
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
echo "test.sh: go test -race" >&2
go test -race -timeout 20m ./...
