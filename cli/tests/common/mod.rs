//! What the CLI test files share: the binary, and one run of it read back.

use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_preflight");

/// What one run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs `command` (built on [`BIN`]) and waits for it.
    pub fn of(command: &mut Command) -> Run {
        let out = command.output().unwrap();
        Run {
            // A run killed by a signal has no code: -1 fails every assertion on one.
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts that standard output holds every one of `texts`, naming the one missing.
    #[allow(dead_code)] // not every test file uses it
    pub fn assert_stdout_has(&self, texts: &[&str]) {
        for text in texts {
            assert!(self.stdout.contains(text), "{text}: {}", self.stdout);
        }
    }

    /// Both streams, for assertions that a text appears (or not) anywhere.
    #[allow(dead_code)] // each test file compiles this module; not all of them use this
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}
