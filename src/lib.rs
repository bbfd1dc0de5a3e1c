//! # Preflight
//!
//! Embed a directory of SQL migrations into your binary at compile time, check them while
//! compiling, and apply them safely and fast when the application boots, before its connection
//! pool is handed out.
//!
//! ```no_run
//! // build.rs: adding, removing or editing a migration file re-embeds
//! preflight::build::watch("migrations");
//! ```
//!
//! ```no_run
//! // main.rs
//! static MIGRATIONS: preflight::Migrations = preflight::embed!("migrations");
//!
//! let mut client = postgres::Client::connect("postgres://app@localhost/app", postgres::NoTls)?;
//! MIGRATIONS.run(&mut client)?; // returns once the database is current
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate is a facade: the model and the runner live in `preflight-runtime`, the macro in
//! `preflight-macros` (a thin shim over `preflight-check`). See ARCHITECTURE.md.

// The code `embed!` generates names `::preflight::...`; this makes that path work inside this
// crate's own tests and doctests too.
extern crate self as preflight;

pub use preflight_runtime::*;

/// Embeds the migration directory `dir` (relative to the crate's `Cargo.toml`) into the binary,
/// checking it while compiling; evaluates to a [`Migrations`] usable in a `static`.
///
/// ```
/// static MIGRATIONS: preflight::Migrations = preflight::embed!("migrations");
///
/// let versions: Vec<String> = MIGRATIONS.iter().map(|m| m.version().to_string()).collect();
/// assert_eq!(versions, ["1", "2", "3"]);
/// // `CREATE INDEX CONCURRENTLY` alone in its file runs outside a transaction, automatically.
/// assert_eq!(MIGRATIONS.as_slice()[1].up().kind(), preflight::Kind::NoTransaction);
/// assert!(MIGRATIONS.as_slice()[2].is_reversible());
/// ```
///
/// Every file is embedded with `include_str!`, so editing one re-embeds it. To notice a *new*
/// file, call [`build::watch`] from the crate's `build.rs` (with `preflight` in
/// `[build-dependencies]`, `default-features = false`).
///
/// # What is checked
///
/// Names and layout (one layout per directory: `{version}_{name}.up.sql`/`.down.sql`,
/// `{version}_{name}.sql`, goose, `V{version}__{name}.sql`, diesel directories), duplicate
/// versions, down files without an up file, UTF-8, directives, the SQL of every up and down body
/// (PostgreSQL grammar, with `path:line:column`, the line and a caret), psql-only commands,
/// transaction control and statements that cannot run in a transaction (see
/// [`preflight_check::kind_rules`](https://docs.rs/preflight-check)). Any problem is a
/// `compile_error!` listing every problem of the directory.
///
/// Lint findings for lock-heavy or destructive DDL (squawk's rules, without the two timeout
/// rules) are compiler warnings; `-- preflight:allow(rule-name)` in a file accepts a rule there.
///
/// # Options
///
/// `key = value` after the directory:
/// * `dialect = "postgres"` (default) or `"sqlite"` (feature `sqlite`): SQLite's migrations are
///   split as SQLite splits them, and the whole chain (every up in order, then the downs newest
///   first) is applied to an in-memory SQLite while compiling; the first statement SQLite
///   rejects is the error, at its `path:line:column`, with SQLite's message. PostgreSQL's lints
///   do not apply to SQLite;
/// * `lints = "warn"` (default), `"deny"` (findings are errors) or `"allow"` (no lints);
/// * `lint_since = 42`: lint only migrations whose version is above 42.
///
/// ```
/// static STRICT: preflight::Migrations =
///     preflight::embed!("migrations", lints = "deny", lint_since = 1);
/// assert_eq!(STRICT.len(), 3);
/// ```
pub use preflight_macros::embed;

/// Makes a test function receive its own database, already at the latest migration (feature
/// `testing`).
///
/// The function's one parameter is the database: [`testing::TestDatabase`] for PostgreSQL,
/// `testing::SqliteTestDatabase` for SQLite (with the `sqlite` feature too). It is a copy of
/// the set's template, migrated once per set (see [`testing`]), and is dropped when the test
/// ends, also when it panics. Without arguments the set is `MIGRATIONS` in scope; name another
/// with `#[preflight::test(migrations = path::TO::SET)]`. An `async fn` test runs on a
/// current-thread tokio runtime, as with `#[tokio::test]` (which it replaces).
///
/// ```no_run
/// use preflight::testing::TestDatabase;
///
/// static MIGRATIONS: preflight::Migrations = preflight::embed!("migrations");
///
/// #[preflight::test]
/// fn inserts_a_user(db: TestDatabase) {
///     let mut client = db.connect();
///     client.execute("INSERT INTO users (email) VALUES ($1)", &[&"a@example.com"]).unwrap();
/// }
///
/// #[preflight::test(migrations = MIGRATIONS)]
/// async fn counts_users(db: TestDatabase) -> Result<(), tokio_postgres::Error> {
///     let client = db.connect_async().await;
///     let row = client.query_one("SELECT count(*) FROM users", &[]).await?;
///     assert_eq!(row.get::<_, i64>(0), 0);
///     Ok(())
/// }
/// ```
///
/// The server is `DATABASE_URL`, or a private throwaway cluster when it is unset
/// ([`testing::server_url`]).
#[cfg(feature = "testing")]
pub use preflight_macros::test;

/// The `preflight` commands over the embedded migrations, for a single-binary application
/// (`myapp migrate status|up|down|...`); feature `cli`.
///
/// ```no_run
/// static MIGRATIONS: preflight::Migrations = preflight::embed!("migrations");
///
/// fn main() -> std::process::ExitCode {
///     let mut args = std::env::args_os().peekable();
///     let program = args.next();
///     if args.peek().is_some_and(|a| a == "migrate") {
///         // `myapp migrate up` → the commands see `migrate up`
///         return preflight::cli::run_from(Some(&MIGRATIONS), args);
///     }
///     # let _ = program;
///     // ... the application ...
///     std::process::ExitCode::SUCCESS
/// }
/// ```
#[cfg(feature = "cli")]
pub mod cli {
    pub use preflight_cli::{run, run_composed, run_from};
}

/// The README's examples, compiled as doctests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
