//! A database another tool migrated (the runner's dry run lists the tables it finds), so that
//! `status` can say so and `up` does not apply every migration on top of it.

use std::fmt;

use preflight_runtime::adopt::ForeignTable;

/// A history table of another tool found in the database, as the runtime recognised it.
pub(crate) struct Foreign(pub ForeignTable);

impl fmt::Display for Foreign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.0;
        match t.tool {
            Some(tool) => write!(
                f,
                "this database was migrated by {tool} (its history table {}.{} exists) and has no Preflight history yet",
                t.schema, t.table
            ),
            None => write!(
                f,
                "this database was migrated by an unknown tool (a table {}.{} with columns no supported tool uses) and has no Preflight history yet",
                t.schema, t.table
            ),
        }
    }
}

impl Foreign {
    /// What to do about it.
    pub(crate) fn advice(&self) -> &'static str {
        match self.0.tool {
            Some(_) => "run `preflight adopt` to take its history over (check first with `preflight adopt --dry-run`), then `up`",
            None => "mark what it already has with `preflight baseline VERSION`, then `up`",
        }
    }
}
