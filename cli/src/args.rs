//! The command line, as clap parses it.

use clap::{Args, Parser, Subcommand};

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
    /// The history table, optionally schema-qualified (`schema.table`).
    #[arg(long, default_value = "preflight_history", global = true)]
    pub table: String,
    /// How long to wait for the migration lock while another process migrates (e.g. `30s`,
    /// `2m`); the error then names the holder.
    #[arg(long, default_value = "60s", global = true, value_name = "DURATION")]
    pub lock_timeout: humantime::Duration,
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
