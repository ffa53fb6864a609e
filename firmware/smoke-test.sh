#!/usr/bin/env bash
# Boots a built image in qemu (software emulation unless ACCEL=kvm) on a throwaway overlay, and checks what an office would see first: the console shows the panel's
# address and a set-up link; the panel answers over HTTPS through the box's proxy, plain
# HTTP redirects to it, /healthz is 200 (registration, broker, disk, queue, model), and the
# set-up link opens the form that creates the administrator.
#
#   firmware/smoke-test.sh build/image/appliance-<version>.img
#
# Needs qemu-system-x86 and curl. Not part of `make test` (a boot under emulation takes
# minutes); run it after every image build.
set -euo pipefail

image=${1:?usage: smoke-test.sh IMAGE}
timeout_s=${TIMEOUT:-1200}
work=$(mktemp -d)
console="$work/console.log"
https_port=${HTTPS_PORT:-18443}
http_port=${HTTP_PORT:-18080}

log() { echo "smoke-test: $*" >&2; }
fail() { log "FAIL: $*"; log "last console lines:"; tail -40 "$console" >&2 || true; exit 1; }

# ACCEL: "tcg" (emulation, the default: works everywhere, boots in about a minute) or
# "kvm" (faster where nested virtualisation works well). -cpu max: SSE4.2 and up, which
# numpy needs (x86-64-v2), as does the box.
accel=(-accel tcg -cpu max)
[ "${ACCEL:-tcg}" = "kvm" ] && accel=(-accel kvm -cpu host)
qemu-system-x86_64 "${accel[@]}" -m 3072 -smp 2 -display none -no-reboot \
    -drive "file=$image,format=raw,if=virtio,snapshot=on" \
    -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$https_port-:443,hostfwd=tcp:127.0.0.1:$http_port-:80" \
    -serial "file:$console" &
qemu=$!
trap 'kill $qemu 2>/dev/null || true; wait $qemu 2>/dev/null || true; rm -rf "$work"' EXIT
log "booting $image; console in $console"

started=$(date +%s)
health=""
while [ $(($(date +%s) - started)) -lt "$timeout_s" ]; do
    kill -0 $qemu 2>/dev/null || fail "qemu exited"
    code=$(curl -sk -o "$work/healthz" -w '%{http_code}' "https://127.0.0.1:$https_port/healthz" || true)
    if [ "$code" = "200" ]; then
        health=$(cat "$work/healthz")
        break
    fi
    sleep 5
done
[ -n "$health" ] || fail "no healthy /healthz over HTTPS within ${timeout_s}s (last answer: ${code:-none})"
log "healthy after $(($(date +%s) - started)) s: $health"

token=$(grep -ao 'setup?token=[A-Za-z0-9_-]*' "$console" | head -1 | cut -d= -f2)
[ -n "$token" ] || fail "the console shows no set-up link"
grep -aq "Panel: https://" "$console" || fail "the console shows no panel address"
code=$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$https_port/setup?token=$token")
[ "$code" = "200" ] || fail "the set-up link answers $code"
code=$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$https_port/setup?token=wrong")
[ "$code" != "200" ] || fail "a wrong set-up token is accepted"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/")
[ "$code" = "301" ] || fail "plain HTTP answers $code, not a redirect to HTTPS"
curl -sk -D "$work/headers" -o /dev/null "https://127.0.0.1:$https_port/login"
grep -qi '^content-security-policy' "$work/headers" || fail "the panel's security headers are missing"
log "OK: console banner with set-up link, HTTPS panel, HTTP redirect, healthy appliance"
