#!/usr/bin/env bash
# Boots a firmware ELF on QEMU and decodes its defmt log with defmt-print; exits with
# the image's semihosting exit status. `cargo run` uses it (the runners in
# .cargo/config.toml) and so does tools/firmware.sh.
#
# The board follows the ELF: a Cortex-R52 build (its path names `armv8r`, or it ends in
# `-r52.elf`) runs on `-machine mps3-an536` with the QEMU named by $QEMU_R52 (QEMU >= 8;
# Debian bookworm's is 7.2, bookworm-backports has 10); anything else on the Cortex-M7
# `-machine mps2-an500` with qemu-system-arm.
#
# Usage: qemu-run.sh ELF [QEMU OPTION...]   e.g. `-icount shift=0,sleep=off` for
# reproducible cycle counts, or `-serial tcp:127.0.0.1:PORT` for the HIL DUT build.
# Nothing but the log may reach QEMU's standard output (it is one binary stream), so
# the monitor is off and UART0 unconnected unless an option connects it.
set -uo pipefail

elf=${1:?usage: qemu-run.sh ELF [QEMU OPTION...]}
shift
case $elf in
*armv8r* | *-r52.elf)
    # `-audio none`: an unpacked backports QEMU lacks the audio drivers it would probe.
    board=("${QEMU_R52:-qemu-system-arm}" -machine mps3-an536 -cpu cortex-r52 -audio none)
    ;;
*)
    board=(qemu-system-arm -machine mps2-an500 -cpu cortex-m7)
    ;;
esac
"${board[@]}" -display none -monitor none -semihosting-config enable=on,target=native \
    "$@" -kernel "$elf" | defmt-print -e "$elf"
statuses=("${PIPESTATUS[@]}")
if [ "${statuses[1]}" -ne 0 ]; then
    echo "qemu-run.sh: defmt-print failed (status ${statuses[1]}); is it installed? run tools/setup-cross.sh" >&2
fi
exit "${statuses[0]}"
