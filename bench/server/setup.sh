#!/usr/bin/env bash
# Installs the public tools the server benchmark uses (not needed by the tests): wrk, nginx (the
# bare reverse-proxy floor; its service is stopped, bench/server/run.py starts its own), curl,
# util-linux's taskset, and oha from crates.io (fixed-rate load with latency correction).
set -euo pipefail
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk nginx-light curl util-linux >/dev/null
$SUDO systemctl disable --now nginx >/dev/null 2>&1 || $SUDO service nginx stop >/dev/null 2>&1 || true
command -v oha >/dev/null || cargo install --locked oha
echo "wrk, nginx, curl, taskset and oha are installed"
