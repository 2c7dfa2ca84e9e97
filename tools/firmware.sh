#!/usr/bin/env bash
# Builds the Cortex-M7 firmware image (targets/firmware) and runs it under QEMU:
#  1. writes the ROI classifier's and the BEV classifier's ONNX (cadence-compiler's
#     `firmware_roi_classifier` and `firmware_bev_classifier` examples) and compiles
#     them with the host `cadence` into out/firmware/*.cpk;
#  2. builds the Cortex-M7 image three times: as is (self-test + fixed-rate demo), with
#     the `corrupt-package` feature, and with `hil-dut` (the HIL device under test,
#     out/firmware/cadence-firmware-dut.elf); and the Cortex-R52 image
#     (self-test + the same demo, out/firmware/cadence-firmware-r52.elf);
#  3. runs them on QEMU's mps2-an500: the first must pass its self-test and demo and
#     exit 0, twice under `-icount` with the same cycle count for every timed frame; the
#     second must report the package error and exit non-zero; the DUT must send its
#     wire-protocol `Hello` on UART0 at boot; the R52 image must pass its self-test and
#     the same demo (timed in generic timer ticks), twice with the same tick counts, when
#     a QEMU >= 8 is at hand ($QEMU_R52, else the one tools/setup-cross.sh unpacks, else
#     qemu-system-arm), and is skipped with a note otherwise;
#  4. prints the images' flash and RAM use (llvm-size);
#  5. checks the firmware crate's formatting, lints and docs (the root workspace's
#     `cargo fmt`/`clippy` do not reach it: it is its own workspace).
# Needs tools/setup-cross.sh run once. Exits non-zero on any failed check.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== firmware: %s ===\n' "$*"; }

for tool in /usr/bin/cargo /usr/bin/rustc qemu-system-arm llvm-size-22 defmt-print python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "firmware: $tool not found; run tools/setup-cross.sh first" >&2
        exit 1
    fi
done

out=out/firmware
mkdir -p "$out"

step "packages"
# CADENCE names a `cadence` binary already built (as for tools/build-models.sh).
if [ -z "${CADENCE:-}" ]; then
    cargo build --release -p cadence-cli --quiet
fi
cadence=${CADENCE:-target/release/cadence}
fresh_onnx=$(mktemp)
trap 'rm -f "$fresh_onnx"' EXIT
for model in roi_classifier bev_classifier; do
    onnx=$out/$model.onnx
    package=$out/$model.cpk
    # Rebuilt only when its inputs changed, so a warm run does not rebuild the image
    # (a package records when it was compiled, so each compile gives new bytes).
    cargo run --release --quiet -p cadence-compiler --example "firmware_$model" -- "$fresh_onnx"
    cmp -s "$fresh_onnx" "$onnx" || cp "$fresh_onnx" "$onnx"
    if [ ! -e "$package" ] || [ "$onnx" -nt "$package" ] || [ "$cadence" -nt "$package" ]; then
        "$cadence" compile "$onnx" -o "$package" --no-source
    else
        echo "$package is up to date"
    fi
done
package=$out/roi_classifier.cpk
lidar_package=$out/bev_classifier.cpk

# The firmware is its own workspace, built by Debian's cargo (rustup's has no
# thumbv7em target); build-std needs the unstable gate on cargo itself too.
firmware_cargo() {
    (cd targets/firmware && RUSTC_BOOTSTRAP=1 CADENCE_FIRMWARE_PACKAGE="$PWD/../../$package" \
        CADENCE_FIRMWARE_LIDAR_PACKAGE="$PWD/../../$lidar_package" \
        /usr/bin/cargo build --release "$@")
}
elf=targets/firmware/target/thumbv7em-none-eabihf/release/cadence-firmware

step "build"
firmware_cargo
cp "$elf" "$out/cadence-firmware.elf"
firmware_cargo --features corrupt-package
cp "$elf" "$out/cadence-firmware-corrupt.elf"
firmware_cargo --features hil-dut
cp "$elf" "$out/cadence-firmware-dut.elf"
firmware_cargo --target armv8r-none-eabihf
cp targets/firmware/target/armv8r-none-eabihf/release/cadence-firmware "$out/cadence-firmware-r52.elf"

# Runs an image on QEMU's Cortex-M7 board with `-icount shift=0,sleep=off` (one
# instruction per virtual nanosecond, so timer counts depend only on the code run, and
# idle time skipped, so the demo's second of frames takes a fraction of one); prints
# its decoded defmt log, and its exit status last.
run_image() {
    local status=0
    timeout 120 targets/firmware/qemu-run.sh "$1" -icount shift=0,sleep=off || status=$?
    echo "exit status: $status"
}

# Checks two -icount runs of a self-test + demo image ($1 names it, $2 the unit its
# frames are timed in, $3 and $4 the two runs' outputs): both passed the self-test,
# released a second of frames at both rates and exited 0, with the same count for
# every timed frame.
check_demo() {
    local image=$1 unit=$2 output
    for output in "$3" "$4"; do
        if [ "$(tail -n1 <<<"$output")" != "exit status: 0" ] || ! grep -q "self-test PASSED" <<<"$output" \
            || ! grep -q "camera frame 29:" <<<"$output" || ! grep -q "lidar frame 9:" <<<"$output"; then
            echo "firmware: FAIL: the $image image did not pass its self-test and run a second of frames" >&2
            exit 1
        fi
    done
    local frames
    frames=$(grep " $unit (" <<<"$3" || true)
    if [ -z "$frames" ] || [ "$frames" != "$(grep " $unit (" <<<"$4" || true)" ]; then
        echo "firmware: FAIL: the $image frames' $unit differ between two -icount runs" >&2
        diff <(echo "$frames") <(grep " $unit (" <<<"$4") >&2 || true
        exit 1
    fi
    echo "$image, second run: identical $unit"
}

step "run: the packages as compiled (self-test and demo must pass and exit 0, twice, same cycle counts)"
good=$(run_image "$out/cadence-firmware.elf")
echo "$good"
again=$(run_image "$out/cadence-firmware.elf")
check_demo Cortex-M7 cycles "$good" "$again"

step "run: one weights byte flipped (must report the package error, exit non-zero)"
corrupt=$(run_image "$out/cadence-firmware-corrupt.elf")
echo "$corrupt"
corrupt_status=$(tail -n1 <<<"$corrupt")
if [ "$corrupt_status" = "exit status: 0" ] || [ "$corrupt_status" = "exit status: 124" ] \
    || ! grep -qF 'checksum mismatch in section `weights`' <<<"$corrupt"; then
    echo "firmware: FAIL: the corrupted image did not report the damaged weights and exit non-zero" >&2
    exit 1
fi

step "run: the HIL device under test (must send its Hello on UART0 at boot)"
serial=$out/dut-boot-serial.bin
rm -f "$serial"
# The DUT serves for ever: stop it once it has had time to boot.
timeout 5 targets/firmware/qemu-run.sh "$out/cadence-firmware-dut.elf" -serial "file:$serial" || true
python3 - "$serial" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
header, payload = data[:24], data[24:]
magic, version, kind, seq, length, payload_crc, header_crc = struct.unpack("<4sHHIIII", header)
ok = (magic == b"CDN\xa5" and version == 1 and kind == 9 and seq == 0 and length == 24
      and len(payload) == length and zlib.crc32(header[:20]) == header_crc
      and zlib.crc32(payload) == payload_crc)
if not ok:
    sys.exit(f"firmware: FAIL: the DUT's first UART bytes are not a wire Hello: {data[:64].hex()}")
name, streams, _, max_payload = struct.unpack("<16sHHI", payload)
print(f"hello from {name.rstrip(bytes(1)).decode()}: streams {streams:#x}, max payload {max_payload} bytes")
PY

step "run: the Cortex-R52 image (QEMU >= 8, mps3-an536: self-test and demo must pass and exit 0, twice, same timer ticks)"
# tools/setup-cross.sh unpacks a QEMU >= 8 there.
unpacked_r52=.cross/qemu-backports/usr/bin/qemu-system-arm
default_r52=qemu-system-arm
if [ -x "$unpacked_r52" ]; then default_r52=$PWD/$unpacked_r52; fi
qemu_r52=${QEMU_R52:-$default_r52}
if "$qemu_r52" -machine help 2>/dev/null | grep -q '^mps3-an536'; then
    r52=$(QEMU_R52=$qemu_r52 run_image "$out/cadence-firmware-r52.elf")
    echo "$r52"
    r52_again=$(QEMU_R52=$qemu_r52 run_image "$out/cadence-firmware-r52.elf")
    check_demo Cortex-R52 "timer ticks" "$r52" "$r52_again"
else
    echo "skipped: $qemu_r52 has no mps3-an536 machine (QEMU >= 8 needed; set QEMU_R52 to one," \
        "e.g. bookworm-backports' qemu-system-arm unpacked with dpkg -x)"
fi

step "size (flash = text + data, RAM = data + bss; the stack takes the rest of RAM)"
for image in cadence-firmware cadence-firmware-dut cadence-firmware-r52; do
    llvm-size-22 "$out/$image.elf"
    llvm-size-22 "$out/$image.elf" | awk -v image="$image" 'NR == 2 {
        printf "%s: flash %d bytes (%.1f KiB), static RAM %d bytes (%.1f KiB)\n",
            image, $1 + $2, ($1 + $2) / 1024, $2 + $3, ($2 + $3) / 1024 }'
done
step "format, lints, docs"
(
    cd targets/firmware
    export RUSTC_BOOTSTRAP=1 CADENCE_FIRMWARE_PACKAGE="$PWD/../../$package"
    export CADENCE_FIRMWARE_LIDAR_PACKAGE="$PWD/../../$lidar_package"
    cargo fmt -- --check
    # /usr/bin first, so cargo finds Debian's clippy rather than rustup's proxy.
    # The self-test/demo build and the DUT build compile different modules: lint both.
    PATH=/usr/bin:$PATH /usr/bin/cargo clippy --release --quiet -- -D warnings
    PATH=/usr/bin:$PATH /usr/bin/cargo clippy --release --all-features --quiet -- -D warnings
    PATH=/usr/bin:$PATH /usr/bin/cargo clippy --release --target armv8r-none-eabihf --quiet -- -D warnings
    RUSTDOCFLAGS="-D warnings" /usr/bin/cargo doc --release --no-deps --quiet
    RUSTDOCFLAGS="-D warnings" /usr/bin/cargo doc --release --no-deps --quiet --features hil-dut
    RUSTDOCFLAGS="-D warnings" /usr/bin/cargo doc --release --no-deps --quiet --target armv8r-none-eabihf
)
echo "firmware: all checks passed"
