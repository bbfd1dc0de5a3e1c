//! The in-memory SQLite database the compile-time check applies migrations to, fenced off from
//! the build machine.
//!
//! The check runs the user's SQL inside rustc. Without a fence, a migration could write files
//! on the build machine (`ATTACH DATABASE '/path'` creates the file, `VACUUM INTO '/path'`
//! writes a copy of the database), load a native library into the compiler (`load_extension()`),
//! change SQLite's process-wide settings for every other check in the same compiler process
//! (`PRAGMA temp_store_directory`, `soft_heap_limit`, `hard_heap_limit`), or never finish (a
//! recursive CTE without a bound hangs `cargo build`).
//!
//! SQLite's own hooks draw the fence, at the level where SQLite decides, not by matching text:
//! * the **authorizer** sees every action while a statement is prepared, including the
//!   `ATTACH` that `VACUUM INTO` performs internally. Attaching a named file is refused;
//!   SQLite's private temporary database (filename `""`, which plain `VACUUM` attaches) and
//!   `:memory:` touch no file and stay allowed, as does `DETACH`, which can only detach those.
//!   `load_extension()` is refused (SQLite also keeps it disabled). The pragmas with effects
//!   outside this connection are ignored: they run as no-ops rather than fail, since they are
//!   valid at boot;
//! * the **progress handler** counts virtual-machine steps and interrupts a statement past a
//!   fixed budget. A step count, not a clock: the same migration passes or fails on every
//!   machine, however loaded, so a build never fails by chance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::Connection;

/// The most virtual-machine steps one statement may take: generating about ten million rows
/// (a recursive CTE inserting 1,000,000 rows takes 23 million steps), a few seconds in a debug
/// build, far beyond what a migration does to the empty database of the check.
pub(crate) const STEP_BUDGET: u64 = 250_000_000;

/// How many steps SQLite runs between two calls of the progress handler.
const STEPS_PER_CALL: u64 = 100_000;

/// Pragmas whose effect reaches beyond the check's connection: SQLite's process-wide settings
/// (the temporary-file directory, which SQLite also checks exists and is writable, and the
/// heap limits of the compiler process). They run as no-ops in the check.
const PROCESS_WIDE_PRAGMAS: &[&str] = &[
    "temp_store_directory",
    "data_store_directory",
    "soft_heap_limit",
    "hard_heap_limit",
];

/// Why the sandbox stopped a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `ATTACH` (or `VACUUM INTO`, which attaches its target) of a named file.
    Attach {
        /// The file name as written.
        filename: String,
    },
    /// The `load_extension()` SQL function.
    LoadExtension,
    /// The statement ran past [`STEP_BUDGET`].
    StepBudget,
}

/// A statement that did not run.
#[derive(Debug)]
pub(crate) enum Failure {
    /// SQLite rejected it: its message and, when SQLite tells, the byte offset of the token.
    Sqlite {
        message: String,
        offset: Option<usize>,
    },
    /// The sandbox stopped it.
    Refused(Refusal),
}

/// An in-memory SQLite database with the authorizer and the step budget installed.
pub(crate) struct Sandbox {
    conn: Connection,
    refusal: Arc<Mutex<Option<Refusal>>>,
    steps: Arc<AtomicU64>,
}

impl Sandbox {
    /// Opens the database and installs the fence.
    pub(crate) fn open() -> rusqlite::Result<Sandbox> {
        let conn = Connection::open_in_memory()?;
        // Temporary tables and sorts in memory too: nothing of the check lands in /tmp.
        conn.execute_batch("PRAGMA temp_store = MEMORY")?;
        let refusal = Arc::new(Mutex::new(None));
        let steps = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&refusal);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            let (decision, refused) = authorize(&ctx);
            if let Some(r) = refused {
                *seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
            }
            decision
        }))?;
        let counted = Arc::clone(&steps);
        let interrupted = Arc::clone(&refusal);
        conn.progress_handler(
            i32::try_from(STEPS_PER_CALL).unwrap_or(i32::MAX),
            Some(move || {
                let done = counted.fetch_add(STEPS_PER_CALL, Ordering::Relaxed) + STEPS_PER_CALL;
                let over = done > STEP_BUDGET;
                if over {
                    *interrupted.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(Refusal::StepBudget);
                }
                over
            }),
        )?;
        Ok(Sandbox {
            conn,
            refusal,
            steps,
        })
    }

    /// Runs one statement (or a script of them) with a fresh step budget.
    pub(crate) fn execute(&self, sql: &str) -> Result<(), Failure> {
        self.steps.store(0, Ordering::Relaxed);
        *self.refusal.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let result = self.conn.execute_batch(sql);
        let refused = self
            .refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match (result, refused) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(refusal)) => Err(Failure::Refused(refusal)),
            (Err(e), None) => Err(match e {
                rusqlite::Error::SqlInputError { msg, offset, .. } => Failure::Sqlite {
                    message: msg,
                    offset: usize::try_from(offset).ok(),
                },
                rusqlite::Error::SqliteFailure(f, msg) => Failure::Sqlite {
                    message: msg.unwrap_or_else(|| f.to_string()),
                    offset: None,
                },
                other => Failure::Sqlite {
                    message: other.to_string(),
                    offset: None,
                },
            }),
        }
    }
}

/// The authorizer's decision on one action, and what to report when it refuses.
fn authorize(ctx: &AuthContext<'_>) -> (Authorization, Option<Refusal>) {
    match ctx.action {
        // "" is SQLite's private temporary database (plain VACUUM attaches one).
        AuthAction::Attach { filename } if filename.is_empty() || filename == ":memory:" => {
            (Authorization::Allow, None)
        }
        AuthAction::Attach { filename } => (
            Authorization::Deny,
            Some(Refusal::Attach {
                filename: filename.to_owned(),
            }),
        ),
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension") =>
        {
            (Authorization::Deny, Some(Refusal::LoadExtension))
        }
        AuthAction::Pragma { pragma_name, .. }
            if PROCESS_WIDE_PRAGMAS
                .iter()
                .any(|p| pragma_name.eq_ignore_ascii_case(p)) =>
        {
            (Authorization::Ignore, None)
        }
        _ => (Authorization::Allow, None),
    }
}
