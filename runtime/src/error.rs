//! The one error type of the boot-time runner, with the context an operator needs to act: the
//! version and file, the failing statement and its line, the server's SQLSTATE, message, detail
//! and hint, and for refusals the exact recovery step.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::history::State;
use crate::lock::Holder;
use crate::{Checksum, Version};

/// What the database server said, copied out of the driver's error so that it outlives the
/// connection and reads the same whatever the backend.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbError {
    /// The SQLSTATE code (`42P07`), when the server sent one; `None` for I/O and protocol errors.
    pub code: Option<String>,
    /// The primary message.
    pub message: String,
    /// The server's detail, if any.
    pub detail: Option<String>,
    /// The server's hint, if any.
    pub hint: Option<String>,
    /// The 1-based character position in the query text the server pointed at, if any.
    pub position: Option<u32>,
}

impl DbError {
    /// An error that did not come from the server (I/O, protocol, conversion).
    pub fn other(message: impl Into<String>) -> DbError {
        DbError {
            message: message.into(),
            ..DbError::default()
        }
    }

    /// Whether the SQLSTATE is `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message)?,
            None => f.write_str(&self.message)?,
        }
        if let Some(detail) = &self.detail {
            write!(f, " (detail: {detail})")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {}

/// A migration body that failed on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationError {
    /// The migration's set, when the run composes several.
    pub set: Option<String>,
    /// The migration's version.
    pub version: Version,
    /// Its name.
    pub name: String,
    /// The file it came from.
    pub path: String,
    /// `true` when a down (revert) body failed.
    pub down: bool,
    /// The 0-based index of the failing statement, when known (always for no-transaction
    /// migrations; for a transactional body sent as one script, when the server reported a
    /// position).
    pub statement: Option<usize>,
    /// The 1-based line of the failing statement in the file, when known.
    pub line: Option<usize>,
    /// What the server said.
    pub source: DbError,
}

impl MigrationError {
    /// The error of migration `m`'s up body (or down body, when `down`), failing at statement
    /// `statement` (0-based) when known: the line comes from the body.
    pub(crate) fn new(
        set: Option<String>,
        m: &crate::Migration,
        down: bool,
        statement: Option<usize>,
        source: DbError,
    ) -> MigrationError {
        let body = if down { m.down() } else { Some(m.up()) };
        MigrationError {
            set,
            version: m.version(),
            name: m.name().to_owned(),
            path: m.path().to_owned(),
            down,
            statement,
            line: statement.and_then(|i| body.and_then(|b| b.line_of(i))),
            source,
        }
    }
}

impl fmt::Display for MigrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = if self.down {
            "down migration"
        } else {
            "migration"
        };
        write!(
            f,
            "{dir} {}{} `{}` ({}",
            in_set(&self.set),
            self.version,
            self.name,
            self.path
        )?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(") failed")?;
        if let Some(i) = self.statement {
            write!(f, " at statement {}", i + 1)?;
        }
        write!(f, ": {}", self.source)
    }
}

/// A migration left unfinished in the history (`in_progress` or `failed`), which the runner
/// refuses to step over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// The set, when the run composes several.
    pub set: Option<String>,
    /// The version.
    pub version: Version,
    /// The recorded name.
    pub name: String,
    /// The file, when the binary still has the migration.
    pub path: Option<String>,
    /// `in_progress` (the process died) or `failed` (a statement failed).
    pub state: State,
    /// How many statements completed.
    pub statements_done: u32,
    /// How many statements the migration has.
    pub statements_total: u32,
    /// The line of the next statement (the one that failed or may have been cut short).
    pub next_line: Option<usize>,
    /// The recorded error, for `failed`.
    pub error: Option<String>,
}

impl fmt::Display for Unfinished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let next = self.statements_done + 1;
        let file = self
            .path
            .as_deref()
            .unwrap_or("file no longer in the binary");
        let set = in_set(&self.set);
        let v = self.version;
        let repair = format!("preflight repair{}", cli_set(&self.set));
        write!(f, "migration {set}{v} `{}` ({file}) ", self.name)?;
        let (body, how) = match self.state {
            State::Failed => ("", "failed"),
            State::InProgress => ("", "may or may not have taken effect (its process stopped)"),
            State::RevertFailed => ("down ", "failed"),
            _ => (
                "down ",
                "may or may not have taken effect (its process stopped)",
            ),
        };
        if self.state.is_revert() {
            f.write_str("was being reverted and is unfinished: ")?;
        } else {
            f.write_str("is unfinished: ")?;
        }
        let done = self.statements_done;
        let total = self.statements_total;
        if done == 0 {
            write!(f, "none of its {total} {body}statements completed, and ")?;
        } else {
            write!(f, "{body}statements 1..{done} of {total} completed, and ")?;
        }
        write!(f, "{body}statement {next}")?;
        if let Some(line) = self.next_line {
            write!(f, " (line {line})")?;
        }
        write!(f, " {how}")?;
        if let Some(e) = &self.error {
            write!(f, " with: {e}")?;
        }
        if self.state.is_revert() {
            return write!(
                f,
                ". Check the database, then either continue the revert (run the same \
                 `preflight down` again: it resumes at down statement {next}), or finish it by \
                 hand and run `{repair} --forget {v}` (`Repair::Forget`), or undo what it \
                 reverted by hand and run `{repair} --mark-applied {v}` (`Repair::MarkApplied`)"
            );
        }
        let unchanged = if done == 0 {
            String::new()
        } else {
            format!(", since statements 1..{done} are unchanged")
        };
        write!(
            f,
            ". Check the database, then either fix the file at or after statement {next} and \
             run again (it resumes at statement {next}{unchanged}), or resume as it is \
             (`{repair} --resume {v}`, or `Runner::repair` with `Repair::Resume`), or finish it \
             by hand and run `{repair} --mark-applied {v}` (`Repair::MarkApplied`), or undo it \
             by hand and run `{repair} --forget {v}` (`Repair::Forget`) so that it runs again \
             from the start"
        )
    }
}

/// An unfinished migration (or revert) whose file changed in a unit that had completed: the
/// database has that unit as it was, not as the file now says, so resuming is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedChanged {
    /// The set, when the run composes several.
    pub set: Option<String>,
    /// The version.
    pub version: Version,
    /// The name.
    pub name: String,
    /// The file.
    pub path: String,
    /// Whether the down body (an unfinished revert) changed.
    pub down: bool,
    /// The row's state.
    pub state: State,
    /// How many units (statements, or blocks) completed.
    pub statements_done: u32,
    /// The first completed unit that changed (0-based); `None` when the row does not record
    /// what its completed units were (written before layout 2).
    pub statement: Option<usize>,
    /// That unit's 1-based line in the file.
    pub line: Option<usize>,
}

impl fmt::Display for CompletedChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = in_set(&self.set);
        let v = self.version;
        let done = self.statements_done;
        let next = done + 1;
        let body = if self.down { "down " } else { "" };
        let repair = format!("preflight repair{}", cli_set(&self.set));
        write!(
            f,
            "{} {set}{v} `{}` stopped after {body}statements 1..{done}, and ",
            if self.down {
                "the revert of migration"
            } else {
                "migration"
            },
            self.name
        )?;
        match self.statement {
            Some(i) => {
                write!(f, "completed {body}statement {} ({}", i + 1, self.path)?;
                if let Some(line) = self.line {
                    write!(f, ":{line}")?;
                }
                f.write_str(") has changed in the file since it ran")?;
            }
            None => write!(
                f,
                "its history row does not record what they were (written by an older \
                 Preflight) while the file ({}) has changed since",
                self.path
            )?,
        }
        if self.down {
            write!(
                f,
                ": the database has it as it was. Restore it (then `preflight down` continues \
                 at down statement {next}), or finish the revert by hand and run \
                 `{repair} --forget {v}`"
            )
        } else {
            write!(
                f,
                ": the database has it as it was. Restore it (then the next run resumes at \
                 statement {next}), or, if the database already matches the file as it is now, \
                 run `{repair} --resume {v}`, which continues at statement {next} of the file as \
                 it is now"
            )
        }
    }
}

/// An applied migration whose file changed since it was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumMismatch {
    /// The set, when the run composes several.
    pub set: Option<String>,
    /// The version.
    pub version: Version,
    /// The file in the binary.
    pub path: String,
    /// The checksum in the history.
    pub recorded: String,
    /// The checksum of the file in the binary.
    pub compiled: Checksum,
}

impl fmt::Display for ChecksumMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.version;
        write!(
            f,
            "migration {}{v} ({}) was changed after it was applied: the database recorded \
             checksum {}, the binary has {}. Restore the file, or, if the change is intended and \
             already reflected in the database, run `preflight repair{} --accept-checksum {v}` \
             (`Runner::repair` with `Repair::AcceptChecksum`)",
            in_set(&self.set),
            self.path,
            self.recorded,
            self.compiled,
            cli_set(&self.set)
        )
    }
}

/// `set `auth` `: the set of a migration in a message, when the run composes several.
pub(crate) fn in_set(set: &Option<String>) -> String {
    set.as_ref().map_or_else(String::new, |s| format!("`{s}` "))
}

/// ` --set auth`: the CLI option that names the set in a recommended command.
pub(crate) fn cli_set(set: &Option<String>) -> String {
    set.as_ref()
        .map_or_else(String::new, |s| format!(" --set {s}"))
}

/// Everything that can stop the runner. Refusals (checksum mismatch, missing, out of order,
/// unfinished) leave the database untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One of Preflight's own queries failed (not a migration body).
    #[error("{context}: {source}")]
    Database {
        /// What the runner was doing.
        context: Cow<'static, str>,
        /// What the server said.
        source: Box<DbError>,
    },
    /// A migration's body failed; nothing of it was recorded (transactional) or its progress
    /// was recorded as `failed` (no-transaction).
    #[error("{0}")]
    Migration(Box<MigrationError>),
    /// An applied migration's file changed since it was applied.
    #[error("{0}")]
    ChecksumMismatch(Box<ChecksumMismatch>),
    /// Applied versions below the binary's newest that the binary does not have (a file was
    /// deleted or renamed).
    #[error(
        "the database has applied migration(s) {}{} that this binary does not have (deleted or \
         renamed files?); restore them, or allow it with `.allow_missing(true)`",
        in_set(.set),
        list(.versions)
    )]
    Missing {
        /// The set, when the run composes several.
        set: Option<String>,
        /// The versions, ascending.
        versions: Vec<Version>,
    },
    /// Pending versions below the newest applied one (merged from a parallel branch).
    #[error(
        "migration(s) {}{} are pending but older than the newest applied migration {newest_applied}; \
         renumber them, or allow out-of-order application with `.out_of_order(true)`",
        in_set(.set),
        list(.pending)
    )]
    OutOfOrder {
        /// The set, when the run composes several.
        set: Option<String>,
        /// The pending versions, ascending.
        pending: Vec<Version>,
        /// The newest version in the history.
        newest_applied: Version,
    },
    /// A migration is recorded `in_progress` or `failed` (or its revert `reverting` or
    /// `revert_failed`).
    #[error("{0}")]
    Unfinished(Box<Unfinished>),
    /// An unfinished migration's file changed in a statement that had completed.
    #[error("{0}")]
    CompletedChanged(Box<CompletedChanged>),
    /// The history table holds these migrations under another set's name, and none of the
    /// run's sets (a renamed set, or a directory read under another name): nothing was done.
    #[error(
        "the history table holds these migrations as set(s) {} and has no row of this run's \
         set(s) {}: nothing was done, since applying them again under another name would run \
         every migration twice. Give the set the history's name (`embed!(\"migrations\", set = \
         \"{}\")`, `Migrations::named`, the CLI's `--dir {}=PATH`); or, for migrations that are \
         really other ones, keep this history apart (`Runner::table`, `--table`)",
        quoted(.history),
        quoted(.run),
        .history.first().map_or("", String::as_str),
        .history.first().map_or("", String::as_str)
    )]
    OtherSets {
        /// The sets the history holds.
        history: Vec<String>,
        /// The run's sets.
        run: Vec<String>,
    },
    /// A migration waited for a lock another session held, on every attempt (see
    /// [`Runner::lock_retries`](crate::Runner::lock_retries)); the error names the table and
    /// the session.
    #[error("{0}")]
    Blocked(Box<crate::blocked::Blocked>),
    /// The migration lock was not acquired in time.
    #[error(
        "could not take the migration lock within {waited:?}: {}",
        holder.as_ref().map_or_else(|| "its holder has gone (retry)".to_owned(), |h| format!("held by {h}"))
    )]
    LockTimeout {
        /// How long the runner waited.
        waited: Duration,
        /// Who holds it, as far as the server could tell.
        holder: Option<Box<Holder>>,
    },
    /// [`Runner::wait`](crate::Runner::wait) gave up: the database did not become current for
    /// this binary in time.
    #[error(
        "the database did not become current for this binary within {waited:?}: {}",
        wait_summary(pending, *in_progress)
    )]
    WaitTimeout {
        /// How long it waited.
        waited: Duration,
        /// The migrations still missing (the binary's, not applied), ascending.
        pending: Vec<Version>,
        /// The one a process was running statement by statement at the last look.
        in_progress: Option<Version>,
    },
    /// The lease expired while migrating and another process took it over.
    #[error(
        "the migration lease held as `{owner}` was lost (expired and taken over, or deleted); \
         raise the lease time-to-live above the longest migration"
    )]
    LeaseLost {
        /// The owner text this process used.
        owner: String,
    },
    /// Reverting would need a down body that does not exist; nothing was reverted.
    #[error("cannot revert: {}; nothing was reverted", .reasons.join("; "))]
    NoDown {
        /// One reason per offending version.
        reasons: Vec<String>,
    },
    /// A version given as a target or to a repair is not known.
    #[error("{0}")]
    UnknownVersion(String),
    /// The history table has a layout or content this version of Preflight cannot read.
    #[error("history table: {0}")]
    History(String),
    /// The migrations could not be built in drift's scratch database (the scratch database
    /// was dropped).
    #[error("building the migrations in a scratch database to compare with: {0}")]
    Scratch(Box<Error>),
    /// The runner was configured in a way that cannot work.
    #[error("configuration: {0}")]
    Config(String),
    /// The connection pool failed to hand out a connection.
    #[error("connection pool: {0}")]
    Pool(String),
    /// Another tool's history cannot be adopted; nothing was written.
    #[error("cannot adopt: {0}")]
    Adopt(#[from] crate::adopt::AdoptError),
    /// Migration sets cannot be composed (see [`crate::compose`]); nothing was touched.
    #[error("cannot compose the migration sets: {0}")]
    Compose(#[from] crate::composition::ComposeError),
}

impl Error {
    /// The SQLSTATE of the server error behind this one, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Database { source, .. } => source.code.as_deref(),
            Error::Migration(m) => m.source.code.as_deref(),
            Error::Blocked(b) => b.migration.source.code.as_deref(),
            _ => None,
        }
    }

    /// Whether a policy refused the operation before it changed anything (a changed file,
    /// missing, out-of-order or unfinished migrations, a revert without down bodies, an unknown
    /// version): what `preflight status` reports as the verdict, as opposed to a failure.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::ChecksumMismatch(_)
                | Error::Missing { .. }
                | Error::OutOfOrder { .. }
                | Error::Unfinished(_)
                | Error::CompletedChanged(_)
                | Error::OtherSets { .. }
                | Error::NoDown { .. }
                | Error::UnknownVersion(_)
        )
    }

    /// [`Error::Migration`] for migration `m` (see [`MigrationError::new`]).
    pub(crate) fn migration(
        set: Option<String>,
        m: &crate::Migration,
        down: bool,
        statement: Option<usize>,
        source: DbError,
    ) -> Error {
        Error::Migration(Box::new(MigrationError::new(
            set, m, down, statement, source,
        )))
    }

    pub(crate) fn db(context: impl Into<Cow<'static, str>>, source: DbError) -> Error {
        Error::Database {
            context: context.into(),
            source: Box::new(source),
        }
    }
}

/// `` `a`, `b` ``: set names for a message.
fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn wait_summary(pending: &[Version], in_progress: Option<Version>) -> String {
    let waiting = format!("migration(s) {} still pending", list(pending));
    match in_progress {
        Some(v) => format!(
            "{waiting}; migration {v} is in progress (a process is running it statement by \
             statement): wait longer, or see `preflight status`"
        ),
        None => format!(
            "{waiting} and none in progress: is the process that migrates (a deploy job, \
             `preflight up`) running? Its lock and progress show in `preflight status`"
        ),
    }
}

/// `1, 2, 3`: versions for a message.
pub(crate) fn list(versions: &[Version]) -> String {
    versions
        .iter()
        .map(Version::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Replaces the password in a connection string with `***`, for errors and logs.
///
/// Handles URLs (`postgres://user:secret@host/db`, also `?password=secret` in the query) and
/// key-value connection strings (`host=x password=secret`, also quoted values).
///
/// ```
/// use preflight_runtime::redact_url;
/// assert_eq!(redact_url("postgres://app:s3cr3t@db:5432/prod"), "postgres://app:***@db:5432/prod");
/// assert_eq!(redact_url("host=db password='a b' user=app"), "host=db password=*** user=app");
/// assert_eq!(redact_url("postgres://db/x?sslmode=require&password=p"), "postgres://db/x?sslmode=require&password=***");
/// ```
pub fn redact_url(url: &str) -> Cow<'_, str> {
    if let Some(scheme_end) = url.find("://") {
        let mut out = url.to_owned();
        let rest_start = scheme_end + 3;
        // The authority ends at the first '/', '?' or '#'; userinfo is before its last '@'.
        let authority_end = url[rest_start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| rest_start + i);
        if let Some(at) = url[rest_start..authority_end].rfind('@') {
            let userinfo = &url[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
        let redacted = redact_query_password(&out);
        return if redacted == url {
            Cow::Borrowed(url)
        } else {
            Cow::Owned(redacted)
        };
    }
    redact_key_value(url)
}

fn redact_query_password(url: &str) -> String {
    let Some(q) = url.find('?') else {
        return url.to_owned();
    };
    let (head, query) = url.split_at(q + 1);
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{head}{}", parts.join("&"))
}

fn redact_key_value(s: &str) -> Cow<'_, str> {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut changed = false;
    while let Some(found) = lower[i..].find("password") {
        let key_start = i + found;
        let at_word_start = key_start == 0
            || s[..key_start]
                .chars()
                .next_back()
                .is_some_and(char::is_whitespace);
        let mut j = key_start + "password".len();
        while s[j..].starts_with(' ') {
            j += 1;
        }
        if !at_word_start || !s[j..].starts_with('=') {
            out.push_str(&s[i..key_start + "password".len()]);
            i = key_start + "password".len();
            continue;
        }
        j += 1;
        while s[j..].starts_with(' ') {
            j += 1;
        }
        // The value: quoted with '...' (with \' escapes) or up to the next whitespace.
        let value_end = if s[j..].starts_with('\'') {
            let mut k = j + 1;
            let bytes = s.as_bytes();
            while k < bytes.len() && bytes[k] != b'\'' {
                if bytes[k] == b'\\' {
                    k += 1;
                }
                k += 1;
            }
            (k + 1).min(s.len())
        } else {
            s[j..].find(char::is_whitespace).map_or(s.len(), |e| j + e)
        };
        out.push_str(&s[i..key_start]);
        out.push_str("password=***");
        changed = true;
        i = value_end;
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[i..]);
    Cow::Owned(out)
}

/// An error followed by its sources, `: `-separated: a driver's top-level message (`db error`,
/// `error connecting to server`) alone hides what the server or the OS said.
///
/// ```
/// let e = std::io::Error::other("outer");
/// assert_eq!(preflight_runtime::error::with_causes(&e), "outer");
/// ```
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_urls() {
        assert_eq!(
            redact_url("postgresql://u:p%40ss@h:1/d?x=1"),
            "postgresql://u:***@h:1/d?x=1"
        );
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact_url("postgres://h/d"), "postgres://h/d");
        assert_eq!(
            redact_url("postgres://u:p@h/d?password=q&a=b"),
            "postgres://u:***@h/d?password=***&a=b"
        );
        // An '@' in the path is not userinfo.
        assert_eq!(redact_url("postgres://h/d@x"), "postgres://h/d@x");
    }

    #[test]
    fn redacts_key_value() {
        assert_eq!(redact_url("password=x host=h"), "password=*** host=h");
        assert_eq!(
            redact_url("host=h PASSWORD = 'it\\'s secret' user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(redact_url("host=h user=password"), "host=h user=password");
        assert_eq!(redact_url("host=h"), "host=h");
    }

    #[test]
    fn unfinished_names_the_recovery() {
        let u = Unfinished {
            set: None,
            version: Version::new(3),
            name: "idx".into(),
            path: Some("3_idx.sql".into()),
            state: State::InProgress,
            statements_done: 1,
            statements_total: 3,
            next_line: Some(4),
            error: None,
        };
        let text = u.to_string();
        assert!(text.contains("statements 1..1 of 3"), "{text}");
        assert!(!text.contains("--set"), "{text}");
        let in_auth = Unfinished {
            set: Some("auth".into()),
            ..u.clone()
        }
        .to_string();
        assert!(in_auth.contains("migration `auth` 3"), "{in_auth}");
        assert!(
            in_auth.contains("preflight repair --set auth --forget 3"),
            "{in_auth}"
        );
        assert!(text.contains("statement 2 (line 4)"), "{text}");
        assert!(text.contains("preflight repair --forget 3"), "{text}");
        assert!(text.contains("preflight repair --resume 3"), "{text}");
    }
}
