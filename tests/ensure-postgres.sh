#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries exist for the PostgreSQL half of the test suite.
# The tests start and stop their own throw-away server; this only installs the binaries, and only
# where it can (root with apt-get). Elsewhere the PostgreSQL tests are skipped, except under CI,
# where tests/conftest.py turns a missing server into a failure.
set -euo pipefail
found() {
  command -v pg_ctl >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
}
found && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: installing Debian's postgresql package for the tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  found && exit 0
fi
echo "ensure-postgres: no PostgreSQL server binaries; the PostgreSQL tests will be skipped" >&2
