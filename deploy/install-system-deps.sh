#!/usr/bin/env bash
# Installs the system tools the project needs when they are missing: always a JDK and
# Maven (the local Kafka broker), plus whatever the caller names: `kcat` (a Kafka client
# no one here wrote), `postgresql` (the tests' real database server), `docker-compose`
# (a compose implementation whose parser checks docker-compose.yml), `wrk`, `npm` (the
# risk board's GOV.UK Frontend), `chromium` (the board's browser tests drive /usr/bin/chromium),
# `prometheus` (promtool checks the rules; the live monitoring test runs its server).
set -euo pipefail
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
for pkg in "$@"; do
  case "$pkg" in
    postgresql) compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql) ;;
    kcat) command -v kcat >/dev/null || missing+=(kcat) ;;
    docker-compose) command -v docker-compose >/dev/null || missing+=(docker-compose) ;;
    npm) command -v npm >/dev/null || missing+=(npm) ;;
    chromium) [ -x /usr/bin/chromium ] || missing+=(chromium) ;;
    prometheus) command -v promtool >/dev/null && command -v prometheus >/dev/null || missing+=(prometheus) ;;
    *) dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg") ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "missing system packages: ${missing[*]} (install them, or run as root)" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing system packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
