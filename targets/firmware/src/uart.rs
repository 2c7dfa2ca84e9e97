//! A polled driver for the Arm CMSDK APB UART, the serial port of the MPS2 boards
//! (QEMU's `-serial` chardev is wired to UART0 of `mps2-an500`).
//!
//! The peripheral holds one byte each way: `STATE` says whether the transmit holding
//! register is full and whether a received byte is waiting. QEMU's model applies
//! back-pressure to its chardev (it offers the next byte only once the last one was
//! read), so a byte is never lost by reading late, only delayed.
//!
//! The receiver raises its interrupt for every byte, so [`Uart::wait_for_input`]
//! sleeps the core until one arrives. Sleeping matters under QEMU: a core spinning on
//! `STATE` keeps QEMU's device lock busy and its I/O thread then hands over about one
//! byte per scheduling round; a sleeping one lets it deliver the next byte at once.
//!
//! All register access is in the private accessors below; the rest is safe code.

use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;

use crate::clock::CORE_CLOCK_HZ;

/// Base address of UART0 on QEMU's `mps2-an500` (and the AN385/AN386 boards).
const UART0_BASE: usize = 0x4000_4000;

/// Register offsets.
const DATA: usize = 0x000;
const STATE: usize = 0x004;
const CTRL: usize = 0x008;
const INTSTATUS: usize = 0x00C;
const BAUDDIV: usize = 0x010;

/// `STATE` bits.
const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
/// `CTRL` bits.
const CTRL_TX_ENABLE: u32 = 1 << 0;
const CTRL_RX_ENABLE: u32 = 1 << 1;
const CTRL_RX_INTERRUPT: u32 = 1 << 3;
/// `INTSTATUS` bit of the receive interrupt (write 1 to clear).
const INTSTATUS_RX: u32 = 1 << 1;

/// UART0's receive interrupt: line 0 of the NVIC on `mps2-an500`.
#[derive(Clone, Copy)]
pub struct Uart0Receive;

// SAFETY: 0 is the NVIC line QEMU's mps2-an500 wires UART0's receive interrupt to, a
// line that exists on this core.
unsafe impl InterruptNumber for Uart0Receive {
    fn number(self) -> u16 {
        0
    }
}

/// The baud rate programmed: QEMU ignores it (bytes move at the chardev's speed), a
/// real board needs it, and the peripheral refuses a divider below 16.
const BAUD: u32 = 115_200;
const _: () = assert!(CORE_CLOCK_HZ / BAUD as u64 >= 16);

/// Whether UART0 has been handed out.
static UART0_TAKEN: AtomicBool = AtomicBool::new(false);

/// UART0, enabled both ways; only one exists.
pub struct Uart {
    base: usize,
}

impl Uart {
    /// UART0 at [`BAUD`], transmitter, receiver and receive interrupt enabled; `None`
    /// if it was already taken. The interrupt handler must call
    /// [`acknowledge_uart0_receive`].
    pub fn take_uart0() -> Option<Self> {
        if UART0_TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        let uart = Self { base: UART0_BASE };
        uart.write_register(CTRL, 0);
        uart.write_register(BAUDDIV, (CORE_CLOCK_HZ / BAUD as u64) as u32);
        uart.write_register(INTSTATUS, INTSTATUS_RX);
        uart.write_register(CTRL, CTRL_TX_ENABLE | CTRL_RX_ENABLE | CTRL_RX_INTERRUPT);
        // SAFETY: unmasking can break a critical section that relies on masked
        // interrupts; none does here, and the handler only acknowledges the UART.
        unsafe { NVIC::unmask(Uart0Receive) };
        Some(uart)
    }

    /// Sleeps until a byte is waiting (or another interrupt, such as the clock's,
    /// wakes the core); returns at once if one already is.
    pub fn wait_for_input(&self) {
        // With interrupts masked, a byte arriving between the check and `wfi` still
        // ends the `wfi` (a pending interrupt wakes the core); its handler runs after.
        cortex_m::interrupt::free(|_| {
            if self.read_register(STATE) & STATE_RX_FULL == 0 {
                cortex_m::asm::wfi();
            }
        });
    }

    /// Sends `bytes`, waiting whenever the transmitter is full.
    pub fn write_all(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            while self.read_register(STATE) & STATE_TX_FULL != 0 {}
            self.write_register(DATA, u32::from(byte));
        }
    }

    /// Moves the bytes already received into `buf`, without waiting; returns how many.
    pub fn read_available(&mut self, buf: &mut [u8]) -> usize {
        let mut count = 0;
        while count < buf.len() && self.read_register(STATE) & STATE_RX_FULL != 0 {
            // DATA is 8 bits wide; reading it frees the receiver for the next byte.
            buf[count] = self.read_register(DATA) as u8;
            count += 1;
        }
        count
    }

    fn read_register(&self, offset: usize) -> u32 {
        read_register(self.base, offset)
    }

    fn write_register(&self, offset: usize, value: u32) {
        write_register(self.base, offset, value);
    }
}

/// Clears UART0's receive interrupt; for its interrupt handler (the byte itself stays
/// in the receiver for [`Uart::read_available`]).
pub fn acknowledge_uart0_receive() {
    write_register(UART0_BASE, INTSTATUS, INTSTATUS_RX);
}

fn read_register(base: usize, offset: usize) -> u32 {
    // SAFETY: `base + offset` is one of the UART's word-aligned registers (the offsets
    // above), a device address that is always mapped on this board and has no Rust
    // object behind it; reads have no effect but the UART's own (DATA pops the
    // received byte), and only the one `Uart` reads DATA.
    unsafe { ptr::read_volatile((base + offset) as *const u32) }
}

fn write_register(base: usize, offset: usize, value: u32) {
    // SAFETY: as for `read_register`: a mapped, aligned device register; writing it
    // programs or feeds the UART (INTSTATUS, from the handler, only clears a flag),
    // nothing in memory.
    unsafe { ptr::write_volatile((base + offset) as *mut u32, value) }
}
