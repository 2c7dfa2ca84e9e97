//! Host target. PLACEHOLDER.
