#!/bin/sh
# Installs Debian packages with apt-get when their command is missing:
#
#   scripts/install-packages.sh COMMAND:PACKAGE[,PACKAGE...] ...
#
# for example "dovecot:dovecot-imapd,dovecot-pop3d". It runs apt-get as
# root, or through sudo, and never lets a package start a system-wide
# daemon (a policy-rc.d that refuses every start, removed afterwards).
# A command counts as present when it is in $PATH or in /usr/sbin. A
# COMMAND that is an absolute path may hold shell wildcards, for commands
# outside $PATH such as "/usr/lib/postgresql/*/bin/initdb:postgresql":
# it counts as present when one of its matches is executable.
set -eu

# present COMMAND: whether COMMAND is installed.
present() {
	case $1 in
	/*)
		# Unquoted, so that the shell expands the wildcards; a pattern
		# without matches stays as it is and is not executable.
		for f in $1; do
			[ -x "$f" ] && return 0
		done
		return 1
		;;
	*)
		command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]
		;;
	esac
}

missing=""
for spec in "$@"; do
	cmd=${spec%%:*}
	pkgs=$(echo "${spec#*:}" | tr ',' ' ')
	if ! present "$cmd"; then
		missing="$missing $pkgs"
	fi
done
[ -n "$missing" ] || exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-packages.sh: installing$missing with apt-get" >&2
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	# Keep the packages from starting system daemons.
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod 755 /usr/sbin/policy-rc.d
	created_policy=1
fi
status=0
$SUDO apt-get update -qq || status=$?
if [ "$status" -eq 0 ]; then
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null || status=$?
fi
[ -z "$created_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
exit "$status"
