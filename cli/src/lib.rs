//! The `preflight` command line (work in progress).
