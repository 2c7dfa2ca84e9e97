//! The tract backend. PLACEHOLDER.
