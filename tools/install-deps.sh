#!/usr/bin/env bash
# Installs everything ringmx needs to build and test on Debian 12, from Debian's packages only.
# Idempotent: safe to run again.
set -euo pipefail
# Every program the scripts in tools/ run is here or in a package every Debian system has
# (Essential or Priority: required: coreutils, findutils, grep, sed, gzip, dpkg, apt, libc-bin,
# util-linux). tools/ktls-vm-test.sh installs its own VM tools (qemu-system-x86, busybox-static,
# cpio, openssl) and tools/fresh-machine-test.sh its debootstrap.
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
packages=(
  build-essential cmake ninja-build pkg-config
  liburing-dev libssl-dev libabsl-dev libmimalloc-dev
  libisal-dev  # CRC32C of the queue's log records (core/queue)
  libgtest-dev libgmock-dev libbenchmark-dev libtomlplusplus-dev
  openssl ca-certificates python3 clang-format git
  libcrypt-dev  # libxcrypt: crypt_rn() and crypt_checksalt() for AUTH (yescrypt, sha512-crypt, bcrypt)
  nlohmann-json3-dev  # the independent JSON parser of the fuzz targets (their corpora replay in ctest)
  swaks libnet-ssleay-perl  # AUTH interop in tests/e2e/auth_e2e_test (swaks needs Net::SSLeay for --tls)
  # The real next hops of the delivery tests (tests/testing/next_hops.h), each started by the test
  # as a private instance on 127.0.0.1: Dovecot's LMTP server, and Postfix as an SMTP hop (also
  # bench/compare.sh's Postfix and smtp-sink).
  dovecot-core dovecot-lmtpd postfix
  # The L4 balancer of the PROXY protocol e2e test (tests/e2e/haproxy_e2e_test): several ringmx
  # nodes behind HAProxy (mode tcp, send-proxy-v2, option smtpchk), started by the test.
  haproxy
  # promtool (in Debian's prometheus package) checks the [metrics] endpoint's text in
  # tests/e2e/ops_e2e_test; the Prometheus server it also brings stays off (below).
  prometheus
  libsystemd-dev  # sd_notify() for Type=notify under systemd (net/systemd_notify.cc)
  # systemd-analyze checks dist/ringmx.service in tests/e2e/ops_e2e_test. Installing the package in
  # a container is harmless: its postinst sets up files and starts nothing when systemd is not PID 1.
  systemd
  # cpack -G DEB (dist/CMakeLists.txt) finds the binaries to hand to dpkg-shlibdeps (dpkg-dev, in
  # build-essential) with file(1).
  file
  # The Debian package's default config serves ssl-cert's snakeoil certificate; ops_e2e_test runs
  # `ringmx check` (which loads certificates) on that config.
  ssl-cert
  # The real milters of the milter tests (tests/testing/milter_peers.h), each started by the test
  # on 127.0.0.1: python3-milter (libmilter for Python, module Milter) runs
  # tests/milter/test_milter.py; rspamd (3.4) runs as a private instance, its proxy worker in
  # milter mode. The system rspamd the package enables stays off (below).
  python3-milter rspamd
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: missing ${missing[*]}; run as root (or install sudo) to install them"
    exit 1
  fi
  # "No configuration": Postfix's system instance is left unconfigured and does not start.
  if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
# ssl-cert makes its snakeoil pair when it is installed; an image can have the package without the
# files (made before, removed since). make-ssl-cert does nothing when they exist.
if [ ! -s /etc/ssl/certs/ssl-cert-snakeoil.pem ] || ! $SUDO test -s /etc/ssl/private/ssl-cert-snakeoil.key; then
  $SUDO make-ssl-cert generate-default-snakeoil --force-overwrite
fi
# The system instances of Dovecot, Postfix, HAProxy, Prometheus and rspamd stay off (the tests
# never use them; a running Dovecot would hold /run/dovecot and ports 143/993 for nothing, rspamd
# ports 11332-11334). Where the package's postinst started them (systemd, no policy-rc.d denying
# it), stop them and keep them from starting at boot.
for service in dovecot postfix haproxy prometheus rspamd; do
  [ -e "/etc/init.d/$service" ] || [ -e "/lib/systemd/system/$service.service" ] || continue
  if [ -d /run/systemd/system ]; then
    if systemctl is-enabled --quiet "$service" 2>/dev/null ||
        systemctl is-active --quiet "$service" 2>/dev/null; then
      $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
  else
    $SUDO update-rc.d "$service" disable >/dev/null 2>&1 || true
    case $service in
      dovecot) pidfile=/run/dovecot/master.pid ;;
      postfix) pidfile=/var/spool/postfix/pid/master.pid ;;
      haproxy) pidfile=/run/haproxy.pid ;;
      prometheus) pidfile=/run/prometheus/prometheus.pid ;;
      rspamd) pidfile=/run/rspamd/rspamd.pid ;;
    esac
    if [ -r "$pidfile" ] && kill -0 "$(tr -dc '0-9' <"$pidfile")" 2>/dev/null; then
      $SUDO "/etc/init.d/$service" stop >/dev/null 2>&1 || true
    fi
  fi
done
