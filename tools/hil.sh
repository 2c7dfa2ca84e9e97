#!/usr/bin/env bash
# Runs the hardware-in-the-loop rigs (hil-tests/rigs/*.toml) and leaves their JUnit XML
# and HTML reports (with each DUT instance's output, dut-<n>.log) in out/hil/<rig>/.
#
#   bash tools/hil.sh              # host, and qemu-m7 / qemu-aarch64 when their DUT is built
#   bash tools/hil.sh host qemu-m7 # exactly these (a missing image is then an error)
#
# host: builds cadence-hil and cadence-dut, and the bundled packages if they are
#   missing (tools/build-models.sh); about 15 s of frames.
# qemu-m7: needs qemu-system-arm and out/firmware/{cadence-firmware-dut.elf,
#   roi_classifier.cpk,bev_classifier.cpk} (tools/setup-cross.sh once, then
#   tools/firmware.sh); about 20 s of frames.
# qemu-aarch64: needs qemu-aarch64 and the cross-built
#   target/aarch64/aarch64-unknown-linux-gnu/release/cadence-dut (tools/setup-cross.sh
#   once, then tools/aarch64.sh), and the bundled camera package; about 60 s of frames.
# Exit status: 0 when every check of every rig run passed.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== hil: %s ===\n' "$*"; }

explicit=$#
rigs=("$@")
[ "$explicit" -gt 0 ] || rigs=(host qemu-m7 qemu-aarch64)

step "build cadence-hil and cadence-dut"
cargo build --release -p cadence-hil -p cadence-host --bins --quiet

# Builds the bundled packages when one of "$@" is missing.
need_packages() {
    local pkg
    for pkg in "$@"; do
        if [ ! -e "$pkg" ]; then
            step "bundled packages ($pkg is missing)"
            bash tools/build-models.sh
            return
        fi
    done
}

# A rig whose DUT is not built: an error when the rig was asked for, else skipped.
status=0
unavailable() {
    local rig=$1 missing=$2
    if [ "$explicit" -gt 0 ]; then
        echo "hil: $rig needs $missing" >&2
        status=1
    else
        step "$rig: SKIPPED, missing $missing"
    fi
}

for rig in "${rigs[@]}"; do
    case "$rig" in
        host)
            need_packages models/camera/camera_det_pruned.cpk models/lidar/pfn.cpk \
                models/lidar/backbone_pruned.cpk
            ;;
        qemu-m7)
            missing=""
            command -v qemu-system-arm >/dev/null || missing="qemu-system-arm (run tools/setup-cross.sh)"
            for file in out/firmware/cadence-firmware-dut.elf out/firmware/roi_classifier.cpk \
                        out/firmware/bev_classifier.cpk; do
                [ -e "$file" ] || missing="${missing:+$missing, }$file (run tools/firmware.sh)"
            done
            if [ -n "$missing" ]; then
                unavailable "$rig" "$missing"
                continue
            fi
            ;;
        qemu-aarch64)
            missing=""
            command -v qemu-aarch64 >/dev/null || missing="qemu-aarch64 (run tools/setup-cross.sh)"
            dut=target/aarch64/aarch64-unknown-linux-gnu/release/cadence-dut
            [ -e "$dut" ] || missing="${missing:+$missing, }$dut (run tools/aarch64.sh)"
            if [ -n "$missing" ]; then
                unavailable "$rig" "$missing"
                continue
            fi
            need_packages models/camera/camera_det_pruned.cpk
            ;;
        *)
            [ -e "hil-tests/rigs/$rig.toml" ] || { echo "hil: no rig hil-tests/rigs/$rig.toml" >&2; exit 2; }
            ;;
    esac
    step "rig $rig"
    target/release/cadence-hil run "hil-tests/rigs/$rig.toml" \
        --junit "out/hil/$rig/junit.xml" --report "out/hil/$rig" || status=1
done
exit "$status"
