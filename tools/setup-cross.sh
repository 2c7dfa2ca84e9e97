#!/usr/bin/env bash
# Installs what the cross builds and emulation need (Debian bookworm packages):
#  - rustc-web, cargo-web, rust-web-src: a 1.96 toolchain whose library sources let
#    `build-std` compile `core` for bare-metal targets rustup here cannot download;
#  - rust-web-llvm, lld-22: `rust-lld` (linked to lld-22) and the LLVM tools
#    (`llvm-size-22` reports the firmware's flash and RAM);
#  - rust-web-clippy: lints the firmware for its own target;
#  - qemu-system-arm: runs the Cortex-M7 firmware (`-machine mps2-an500`);
#  - libstd-rust-web-dev:arm64, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user:
#    the aarch64 Linux build (tools/aarch64.sh) links Debian's arm64 standard library
#    (the same version as rustc-web, checked below) with the cross gcc and glibc, and
#    runs under qemu-aarch64. dpkg learns the arm64 architecture once, before the install.
# Then `defmt-print` (cargo install, about 4.5 min the first time), which decodes the
# firmware's defmt log, and QEMU >= 8 for the Cortex-R52 image (`-machine mps3-an536`):
# bookworm's QEMU is 7.2, so bookworm-backports' qemu-system-arm is unpacked into
# .cross/qemu-backports (not installed: it would replace the system QEMU for everyone).
# Idempotent: when everything is already installed it says so and changes nothing.
# Uses sudo only when not root.
set -euo pipefail

packages=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22 rust-web-clippy qemu-system-arm
    libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
# The bare-metal build needs this rustc (build-std and the library sources must match).
min_rustc=1.96

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo

# apt sees no `:arm64` package until dpkg knows the architecture and the lists are fetched.
refresh_lists=false
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "setup-cross: adding dpkg architecture arm64"
    $sudo dpkg --add-architecture arm64
    refresh_lists=true
fi

missing=()
for package in "${packages[@]}"; do
    installed "$package" || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup-cross: all of ${packages[*]} already installed; nothing to do"
else
    echo "setup-cross: installing ${missing[*]}"
    if $refresh_lists; then
        $sudo apt-get update
    fi
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
# rustc only links a standard library built by the very same compiler release.
rustc_package=$(dpkg-query -W -f='${Version}' rustc-web)
libstd_arm64=$(dpkg-query -W -f='${Version}' libstd-rust-web-dev:arm64)
if [ "$libstd_arm64" != "$rustc_package" ]; then
    echo "setup-cross: libstd-rust-web-dev:arm64 is $libstd_arm64 but rustc-web is $rustc_package; install the same version of both" >&2
    exit 1
fi
echo "setup-cross: /usr/bin/rustc $rustc_version, $(qemu-system-arm --version | head -n1)"
echo "setup-cross: arm64 libstd $libstd_arm64, $(qemu-aarch64 --version | head -n1)"

# The firmware logs with defmt: its output is binary until defmt-print decodes it.
if command -v defmt-print >/dev/null; then
    echo "setup-cross: $(defmt-print --version | head -n1) already installed"
else
    echo "setup-cross: installing defmt-print (cargo install, a few minutes)"
    cargo install defmt-print --locked
fi

# The Cortex-R52 board needs QEMU >= 8: unpack bookworm-backports' qemu-system-arm (its
# libraries are bookworm's) next to the repository, through a private apt list.
qemu_r52=.cross/qemu-backports/usr/bin/qemu-system-arm
cd "$(dirname "$0")/.."
if [ -x "$qemu_r52" ]; then
    echo "setup-cross: $("$qemu_r52" --version | head -n1) for the Cortex-R52 already unpacked"
else
    echo "setup-cross: unpacking bookworm-backports' qemu-system-arm into .cross/qemu-backports"
    apt_dir=$(mktemp -d)
    trap 'rm -rf "$apt_dir"' EXIT
    mkdir -p "$apt_dir/lists/partial"
    echo "deb http://deb.debian.org/debian bookworm-backports main" >"$apt_dir/sources.list"
    apt_private=(-q -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
    apt-get "${apt_private[@]}" update >/dev/null
    (cd "$apt_dir" && apt-get "${apt_private[@]}" download qemu-system-arm 2>/dev/null)
    rm -rf .cross/qemu-backports
    mkdir -p .cross
    dpkg -x "$apt_dir"/qemu-system-arm_*.deb .cross/qemu-backports
    machines=$("$qemu_r52" -machine help)
    grep -q '^mps3-an536' <<<"$machines"
    echo "setup-cross: $("$qemu_r52" --version | head -n1) unpacked"
fi
