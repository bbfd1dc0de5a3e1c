//! A migration that could not take a table lock: every attempt waited its `lock_timeout`
//! behind another session, and the retries ran out. What the error tells the operator: which
//! migration and statement, how long it tried, which table, which session holds it, and what to
//! do.
//!
//! The sessions are found when the last attempt has failed, from `pg_locks`,
//! `pg_stat_activity` and `pg_blocking_pids`: the ones in this database whose transaction
//! began before that attempt and is still open, holding a lock on a table or view (a session
//! that began later queued behind the migration and cannot have blocked it). A table held by
//! one of them and named in the blocked statement is *the* table. The sessions' query texts
//! are not read: they can hold data.

use std::fmt;
use std::time::Duration;

use crate::error::MigrationError;
use crate::timeout::Timeout;

/// The error of a migration blocked by another session's lock ([`crate::Error::Blocked`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Blocked {
    /// The migration, the statement when known, and the server's error (SQLSTATE 55P03,
    /// `lock_not_available`; `SQLITE_BUSY` on SQLite).
    pub migration: MigrationError,
    /// How many times it was tried (1 + retries).
    pub attempts: u32,
    /// From the first attempt to the last failure.
    pub waited: Duration,
    /// The lock timeout each attempt had (`None`: the server's own setting).
    pub lock_timeout: Option<Timeout>,
    /// The tables the blocked statement names that the sessions below hold a lock on,
    /// schema-qualified.
    pub tables: Vec<String>,
    /// The sessions that held locks since before the last attempt, most likely first.
    pub blockers: Vec<Blocker>,
    /// For a no-transaction migration: `(done, total)` statements; the statement after `done`
    /// is the one that was blocked, and the history records the migration `failed` there.
    pub progress: Option<(u32, u32)>,
}

/// A session holding locks while a migration waited (PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Blocker {
    /// Its backend process id.
    pub pid: i32,
    /// Its `application_name`.
    pub application_name: String,
    /// `active`, `idle in transaction`, ...
    pub state: String,
    /// When its transaction began.
    pub transaction_start: Option<String>,
    /// When its current (or last) query began.
    pub query_start: Option<String>,
    /// The tables and views it holds locks on, schema-qualified, each with the lock mode
    /// (`public.users AccessShareLock`).
    pub locks: Vec<String>,
    /// The sessions it is itself waiting for (`pg_blocking_pids`): when not empty, the lock
    /// queue's head is one of those.
    pub waiting_for: Vec<i32>,
}

impl Blocked {
    /// Orders the sessions so that those holding a table the statement names come first, and
    /// fills [`Blocked::tables`] with those tables. `statement` is the blocked statement (or
    /// the whole body when the server did not say which statement).
    pub(crate) fn name_tables(&mut self, statement: &str) {
        let named = |lock: &str| {
            let relation = lock.rsplit_once(' ').map_or(lock, |(r, _)| r);
            let bare = relation.rsplit_once('.').map_or(relation, |(_, t)| t);
            names_identifier(statement, bare.trim_matches('"'))
        };
        let mut tables: Vec<String> = Vec::new();
        for b in &self.blockers {
            for lock in b.locks.iter().filter(|l| named(l)) {
                let relation = lock.rsplit_once(' ').map_or(lock.as_str(), |(r, _)| r);
                if !tables.iter().any(|t| t == relation) {
                    tables.push(relation.to_owned());
                }
            }
        }
        self.blockers
            .sort_by_key(|b| (!b.locks.iter().any(|l| named(l)), !b.waiting_for.is_empty()));
        self.tables = tables;
    }
}

/// Whether `text` holds `name` as a whole identifier (case-insensitively): a word match, not a
/// parse, which is enough to pick the table out of the few a long transaction holds.
fn names_identifier(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let lower = text.to_lowercase();
    let name = name.to_lowercase();
    lower.match_indices(&name).any(|(i, m)| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + m.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} (application_name `{}`, {}",
            self.pid, self.application_name, self.state
        )?;
        if let Some(t) = &self.transaction_start {
            write!(f, ", transaction started {t}")?;
        }
        if let Some(q) = &self.query_start {
            write!(f, ", last query started {q}")?;
        }
        write!(f, ") holding {}", self.locks.join(", "))?;
        if !self.waiting_for.is_empty() {
            let pids: Vec<String> = self.waiting_for.iter().map(i32::to_string).collect();
            write!(f, ", itself waiting for pid {}", pids.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.migration;
        write!(f, "migration {} `{}` ({}", m.version, m.name, m.path)?;
        if let Some(line) = m.line {
            write!(f, ":{line}")?;
        }
        f.write_str(") could not take a lock")?;
        if let Some(i) = m.statement {
            write!(f, " at statement {}", i + 1)?;
        }
        match self.lock_timeout {
            Some(t) => write!(f, " within its lock timeout ({t})")?,
            None => f.write_str(" (the server's lock timeout)")?,
        }
        write!(
            f,
            " in {} attempt(s) over {:.1} s ({}). ",
            self.attempts,
            self.waited.as_secs_f64(),
            m.source
        )?;
        match self.progress {
            Some((done, total)) => write!(
                f,
                "It runs outside a transaction: statements 1..{done} of {total} completed, \
                 statement {} did not take its lock, and the history records the migration \
                 failed there. ",
                done + 1
            )?,
            None => {
                f.write_str("Nothing of it was applied: each attempt's transaction rolled back. ")?
            }
        }
        if !self.tables.is_empty() {
            write!(f, "Locked table: {}. ", self.tables.join(", "))?;
        }
        let sqlite = m
            .source
            .code
            .as_deref()
            .is_some_and(|c| c.starts_with("SQLITE_"));
        match self.blockers.as_slice() {
            [] if sqlite => f.write_str(
                "Another connection held the database's write lock (SQLite does not say \
                 which); ",
            )?,
            [] => f.write_str(
                "No session held a table lock since before the last attempt any more (the \
                 blocker has gone); ",
            )?,
            [one] => write!(f, "Blocking session: {one}. ")?,
            many => {
                f.write_str("Sessions holding locks since before the last attempt: ")?;
                let list: Vec<String> = many.iter().map(ToString::to_string).collect();
                write!(f, "{}. ", list.join("; "))?;
            }
        }
        if let Some(first) = self.blockers.first() {
            write!(
                f,
                "End or wait for that transaction (`SELECT pg_terminate_backend({})` if it is \
                 stuck), then ",
                first.pid
            )?;
        }
        f.write_str("run again, at a quieter time if the table is busy")?;
        if self.progress.is_some() {
            write!(
                f,
                " (`preflight repair --resume {v}` continues at the blocked statement; \
                 check for an INVALID index left by an interrupted CREATE INDEX CONCURRENTLY \
                 first)",
                v = m.version
            )?;
        }
        f.write_str(
            "; or give this migration a longer limit with `-- preflight:lock-timeout 30s` \
             (while it waits, queries on the table queue behind it)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DbError;
    use crate::Version;

    fn blocker(pid: i32, locks: &[&str]) -> Blocker {
        Blocker {
            pid,
            application_name: format!("app{pid}"),
            state: "idle in transaction".into(),
            transaction_start: Some("2025-01-01 10:00:00+00".into()),
            query_start: None,
            locks: locks.iter().map(|l| (*l).to_owned()).collect(),
            waiting_for: Vec::new(),
        }
    }

    #[test]
    fn names_the_table_of_the_statement_and_its_holder_first() {
        let mut b = Blocked {
            migration: MigrationError {
                set: None,
                version: Version::new(3),
                name: "flag".into(),
                path: "3_flag.sql".into(),
                down: false,
                statement: Some(0),
                line: Some(2),
                source: DbError {
                    code: Some("55P03".into()),
                    message: "canceling statement due to lock timeout".into(),
                    ..DbError::default()
                },
            },
            attempts: 4,
            waited: Duration::from_millis(2500),
            lock_timeout: Some(Timeout::After(Duration::from_millis(500))),
            tables: Vec::new(),
            blockers: vec![
                blocker(7, &["public.orders_archive AccessShareLock"]),
                blocker(9, &["public.\"Users\" RowExclusiveLock"]),
            ],
            progress: None,
        };
        b.name_tables("ALTER TABLE \"Users\" ADD COLUMN flag bool;");
        assert_eq!(b.tables, ["public.\"Users\""]);
        assert_eq!(b.blockers[0].pid, 9);
        let text = b.to_string();
        for part in [
            "migration 3 `flag` (3_flag.sql:2) could not take a lock at statement 1 within its lock timeout (500ms) in 4 attempt(s) over 2.5 s",
            "Locked table: public.\"Users\"",
            "pid 9 (application_name `app9`, idle in transaction, transaction started 2025-01-01 10:00:00+00) holding public.\"Users\" RowExclusiveLock",
            "pg_terminate_backend(9)",
            "Nothing of it was applied",
            "-- preflight:lock-timeout 30s",
        ] {
            assert!(text.contains(part), "{part}\n{text}");
        }
        assert!(!names_identifier(
            "ALTER TABLE users_old ADD c int",
            "users"
        ));
        assert!(names_identifier(
            "alter table public.users add c int",
            "USERS"
        ));
    }
}
