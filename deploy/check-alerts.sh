#!/usr/bin/env bash
# Checks the Prometheus configuration and alert rules with promtool and runs the rules' unit
# tests (prometheus/alerts_test.yml). Installs promtool from Debian's `prometheus` package when
# it is missing, so a fresh machine and CI need nothing else.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null 2>&1; then
  echo "== promtool not found: installing Debian's prometheus package (it ships promtool)"
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    as_root=(sudo)
  fi
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version | head -n 1

echo "== promtool check rules"
promtool check rules prometheus/alerts.yml

echo "== promtool check config"
promtool check config prometheus/prometheus.yml

echo "== promtool test rules"
promtool test rules prometheus/alerts_test.yml
