//! The command line, as clap parses it.

use clap::{Args, Parser, Subcommand};
use preflight_runtime::Timeout;

/// Embed, check and apply SQL migrations; inspect and repair a database's migration history.
#[derive(Debug, Parser)]
#[command(name = "preflight", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The database, e.g. postgres://user@host:5432/db (its password is never printed).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// A migration directory, as a set: `DIR`, or `SET=DIR` to name its set. Repeat it to
    /// migrate several sets together (`--dir app=migrations --dir auth=crates/auth/migrations`);
    /// a plain `DIR` is named after the crate it is in, as `embed!` names it.
    #[arg(
        long = "dir",
        value_name = "[SET=]DIR",
        default_value = "migrations",
        global = true,
        action = clap::ArgAction::Append
    )]
    pub dirs: Vec<String>,
    /// The set that versions given to a command belong to (`up --to`, `down`, `baseline`,
    /// `repair`, `adopt`) when several sets are migrated together.
    #[arg(long, global = true, value_name = "SET")]
    pub set: Option<String>,
    /// The SQL dialect of the migration directory (default: `sqlite` for a `sqlite:` database
    /// URL, `postgres` otherwise; `check`, which needs no database, uses `postgres` unless told).
    /// In pop's layout it also picks the dialect's files. `mysql` (MySQL and MariaDB) is for
    /// `check` and `new` only: there is no MySQL driver yet.
    #[arg(long, global = true, value_parser = ["postgres", "sqlite", "mysql"])]
    pub dialect: Option<String>,
    /// A declared naming pattern for a home-grown runner's files, e.g.
    /// `V{version}.{name}.{direction}.sql` (placeholders `{version}`, `{name}`, `{direction}`).
    #[arg(long, global = true, value_name = "PATTERN")]
    pub names: Option<String>,
    /// The history table, optionally schema-qualified (`schema.table`).
    #[arg(long, default_value = "preflight_history", global = true)]
    pub table: String,
    /// How long to wait for the migration lock while another process migrates (e.g. `30s`,
    /// `2m`); the error then names the holder.
    #[arg(long, default_value = "60s", global = true, value_name = "DURATION")]
    pub lock_timeout: humantime::Duration,
    /// The `lock_timeout` of every migration (`off`, or e.g. `500ms`, `5s`; default 1s): a
    /// statement that waits longer for a table lock fails instead of queueing the table's
    /// traffic behind it, and the migration is tried again (see --lock-retries). A
    /// migration's `-- preflight:lock-timeout` directive wins.
    #[arg(long, global = true, value_name = "DURATION|off")]
    pub sql_lock_timeout: Option<Timeout>,
    /// The `statement_timeout` of every migration (`off`, or a duration; default: the
    /// server's). A migration's `-- preflight:statement-timeout` directive wins.
    #[arg(long, global = true, value_name = "DURATION|off")]
    pub sql_statement_timeout: Option<Timeout>,
    /// How many times a migration blocked by a table lock is tried again, with back-off and
    /// jitter, before the error names the table and the session holding it (default 5).
    #[arg(long, global = true, value_name = "N")]
    pub lock_retries: Option<u32>,
    /// Machine-readable output (one JSON document on stdout).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print less.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the next migration file, in the layout and numbering the directory already uses.
    New {
        /// What the migration does, e.g. `create_users`.
        name: String,
        /// Also create a down file.
        #[arg(long)]
        reversible: bool,
    },
    /// Show every migration: applied, pending, changed, missing, failed or in progress.
    Status,
    /// Apply pending migrations.
    Up {
        /// Stop after this version.
        #[arg(long)]
        to: Option<String>,
        /// Print the plan and the SQL; touch nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply all pending migrations in one transaction.
        #[arg(long)]
        grouped: bool,
        /// Apply pending versions below the newest applied one.
        #[arg(long)]
        allow_out_of_order: bool,
    },
    /// Wait, without migrating, until the database is current for these migrations (for an
    /// init container or a replica while another process migrates); exit 1 on timeout.
    Wait {
        /// How long to wait before failing with what is still pending.
        #[arg(long, default_value = "5m", value_name = "DURATION")]
        timeout: humantime::Duration,
    },
    /// Compare the database's schema with what its applied migrations build in a scratch
    /// database (dropped afterwards); exit 0 when they match, 1 when the schema drifted.
    Drift {
        /// The PostgreSQL server and role that create the scratch database (it needs the
        /// CREATEDB privilege; default: --database-url).
        #[arg(long, value_name = "URL")]
        scratch_url: Option<String>,
    },
    /// Revert applied migrations with their down files.
    Down {
        /// Revert everything above this version (of the set; `0`: everything, version 0
        /// included).
        #[arg(long, required_unless_present_any = ["steps", "point"], conflicts_with_all = ["steps", "point"])]
        to: Option<String>,
        /// Revert this many of the newest migrations (of the set with `--set`; of every set,
        /// newest first in their composed order, without).
        #[arg(long, conflicts_with = "point")]
        steps: Option<usize>,
        /// Revert every set back to the point where this version of `--set` was the last
        /// migration applied, in the composed order.
        #[arg(long, value_name = "VERSION")]
        point: Option<String>,
        /// Print the plan and the SQL; touch nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run every compile-time check and lint on the directory, without a database.
    Check {
        /// Treat lint warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
        /// Turn a rule (or a group: lock, safety, compatibility, style) off for the project;
        /// repeat it or separate names with commas.
        #[arg(long, value_name = "RULE")]
        allow: Vec<String>,
        /// Turn an opt-in rule (or group) on; repeat it or separate names with commas.
        #[arg(long, value_name = "RULE")]
        enable: Vec<String>,
    },
    /// Record every migration up to VERSION as applied without running it (existing databases).
    Baseline {
        /// The newest version the database already has.
        #[arg(value_name = "VERSION")]
        upto: String,
    },
    /// Take over the history of another migration tool (golang-migrate, goose, sqlx, refinery,
    /// diesel, Flyway): record the versions it applied, once, while Preflight's history is empty.
    Adopt {
        /// The tool whose history to adopt (default: whichever is found).
        #[arg(long, value_name = "TOOL", value_parser = ["golang-migrate", "goose", "sqlx", "refinery", "diesel", "flyway"])]
        from: Option<String>,
        /// Print what would be adopted and what `up` would apply next; touch nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// For development: revert every migration (or, when some cannot be reverted, drop every
    /// object in the migrated schema), then apply them all again. Prints what it will revert or
    /// drop first; does nothing without --yes.
    Reset {
        /// Really do it (without it, only print what would be reverted or dropped).
        #[arg(long)]
        yes: bool,
        /// Allow a database that is not on this machine (by default only localhost, loopback
        /// addresses, Unix sockets and SQLite files are reset).
        #[arg(long)]
        allow_remote: bool,
    },
    /// Clear a failed or in-progress migration, or accept changed checksums; records what it did.
    #[command(group(clap::ArgGroup::new("what").required(true).multiple(false)))]
    Repair {
        /// Forget the failed / in-progress row of VERSION so the next `up` runs it from the start.
        #[arg(long, value_name = "VERSION", group = "what")]
        forget: Option<String>,
        /// Mark the failed / in-progress VERSION as applied (you finished it by hand).
        #[arg(long, value_name = "VERSION", group = "what")]
        mark_applied: Option<String>,
        /// Accept the current file's checksum for the applied VERSION (the edit was deliberate).
        #[arg(long, value_name = "VERSION", group = "what")]
        accept_checksum: Option<String>,
        /// Continue the in-progress / failed no-transaction VERSION after its last completed
        /// statement.
        #[arg(long, value_name = "VERSION", group = "what")]
        resume: Option<String>,
    },
}
