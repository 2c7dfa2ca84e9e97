//! The image's log: one line per event, over semihosting to the host's console.

/// Logs a formatted line, prefixed with `firmware: `.
macro_rules! info {
    ($($arg:tt)*) => {
        cortex_m_semihosting::hprintln!("firmware: {}", format_args!($($arg)*))
    };
}

pub(crate) use info;
