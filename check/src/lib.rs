//! Preflight's compile-time analysis (work in progress).
