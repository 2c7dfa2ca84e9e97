#!/usr/bin/env bash
# Installs what the cross builds and emulation need (Debian bookworm packages):
#  - rustc-web, cargo-web, rust-web-src: a 1.96 toolchain whose library sources let
#    `build-std` compile `core` for bare-metal targets rustup here cannot download;
#  - rust-web-llvm, lld-22: `rust-lld` (linked to lld-22) and the LLVM tools
#    (`llvm-size-22` reports the firmware's flash and RAM);
#  - rust-web-clippy: lints the firmware for its own target;
#  - qemu-system-arm: runs the Cortex-M7 firmware (`-machine mps2-an500`).
# Idempotent: when everything is already installed it says so and changes nothing.
# Uses sudo only when not root.
set -euo pipefail

packages=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22 rust-web-clippy qemu-system-arm)
# The bare-metal build needs this rustc (build-std and the library sources must match).
min_rustc=1.96

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for package in "${packages[@]}"; do
    installed "$package" || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup-cross: all of ${packages[*]} already installed; nothing to do"
else
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "setup-cross: installing ${missing[*]}"
    # Package lists may be stale: on a failed install, refresh them once and retry.
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; then
        $sudo apt-get update
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

rustc_version=$(/usr/bin/rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$min_rustc" "$rustc_version" | sort -V | head -n1)" != "$min_rustc" ]; then
    echo "setup-cross: /usr/bin/rustc is $rustc_version; the firmware needs >= $min_rustc (bookworm-security's rustc-web)" >&2
    exit 1
fi
echo "setup-cross: /usr/bin/rustc $rustc_version, $(qemu-system-arm --version | head -n1)"
