#!/usr/bin/env bash
# Boots a firmware ELF on QEMU's Cortex-M7 board (mps2-an500) and decodes its defmt log
# with defmt-print; exits with the image's semihosting exit status. `cargo run` uses it
# (the runner in .cargo/config.toml) and so does tools/firmware.sh.
#
# Usage: qemu-run.sh ELF [QEMU OPTION...]   e.g. `-icount shift=0,sleep=off` for
# reproducible cycle counts, or `-serial tcp:127.0.0.1:PORT` for the HIL DUT build.
# Nothing but the log may reach QEMU's standard output (it is one binary stream), so
# the monitor is off and UART0 unconnected unless an option connects it.
set -uo pipefail

elf=${1:?usage: qemu-run.sh ELF [QEMU OPTION...]}
shift
qemu-system-arm -cpu cortex-m7 -machine mps2-an500 -display none -monitor none \
    -semihosting-config enable=on,target=native "$@" -kernel "$elf" \
    | defmt-print -e "$elf"
statuses=("${PIPESTATUS[@]}")
if [ "${statuses[1]}" -ne 0 ]; then
    echo "qemu-run.sh: defmt-print failed (status ${statuses[1]}); is it installed? run tools/setup-cross.sh" >&2
fi
exit "${statuses[0]}"
