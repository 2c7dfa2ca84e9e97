//! Cadence compiler. PLACEHOLDER.
