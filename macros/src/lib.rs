//! The `embed!` macro (work in progress).
