#!/usr/bin/env bash
# Runs the hardware-in-the-loop rigs (hil-tests/rigs/*.toml) and leaves their JUnit XML
# and HTML reports (with each DUT instance's output, dut-<n>.log) in out/hil/<rig>/.
#
#   bash tools/hil.sh              # host, and qemu-m7 when its firmware image exists
#   bash tools/hil.sh host qemu-m7 # exactly these (a missing image is then an error)
#
# host: builds cadence-hil and cadence-dut, and the bundled packages if they are
#   missing (tools/build-models.sh); about 15 s of frames.
# qemu-m7: needs qemu-system-arm and out/firmware/{cadence-firmware-dut.elf,
#   roi_classifier.cpk,bev_classifier.cpk} (tools/setup-cross.sh once, then
#   tools/firmware.sh); about 20 s of frames.
# Exit status: 0 when every check of every rig run passed.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== hil: %s ===\n' "$*"; }

explicit=$#
rigs=("$@")
[ "$explicit" -gt 0 ] || rigs=(host qemu-m7)

step "build cadence-hil and cadence-dut"
cargo build --release -p cadence-hil -p cadence-host --bins --quiet

status=0
for rig in "${rigs[@]}"; do
    case "$rig" in
        host)
            for pkg in models/camera/camera_det_pruned.cpk models/lidar/pfn.cpk \
                       models/lidar/backbone_pruned.cpk; do
                if [ ! -e "$pkg" ]; then
                    step "bundled packages ($pkg is missing)"
                    bash tools/build-models.sh
                    break
                fi
            done
            ;;
        qemu-m7)
            missing=""
            command -v qemu-system-arm >/dev/null || missing="qemu-system-arm (run tools/setup-cross.sh)"
            for file in out/firmware/cadence-firmware-dut.elf out/firmware/roi_classifier.cpk \
                        out/firmware/bev_classifier.cpk; do
                [ -e "$file" ] || missing="${missing:+$missing, }$file (run tools/firmware.sh)"
            done
            if [ -n "$missing" ]; then
                if [ "$explicit" -gt 0 ]; then
                    echo "hil: qemu-m7 needs $missing" >&2
                    status=1
                else
                    step "qemu-m7: SKIPPED, missing $missing"
                fi
                continue
            fi
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
