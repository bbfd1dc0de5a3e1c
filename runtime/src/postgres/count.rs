//! `<table>_count`, the history's row count that triggers keep, so that the fast path reads
//! two rows instead of counting the history (see `crate::history`).

use super::history::is_creation_race;
use super::sql;
use super::wire::{Op, PgConn};
use super::PgBackend;

impl<C: PgConn> PgBackend<C> {
    /// Makes `<table>_count` exist and, where triggers can keep it, kept (see
    /// `sql::counter_install`); recounts a kept one that drifted (rows written with triggers
    /// disabled). The count only speeds the fast path up: when it cannot be installed the run
    /// goes on, with a warning, and the fast path counts the rows itself.
    pub(super) async fn ensure_counter(&mut self, counted: bool, kept: bool) {
        if kept {
            let recount = self.sql.recount.clone();
            if let Err(e) = self.one(Op::Simple(&recount)).await {
                let _ = self.one(Op::Simple("ROLLBACK")).await;
                tracing::warn!(error = %e, "could not recount {}", self.sql.count_table);
            }
            return;
        }
        if !self.cockroach {
            let install = sql::counter_install(&self.schema, &self.table);
            match self.one(Op::Simple(&install)).await {
                Ok(_) => {
                    tracing::debug!(table = %self.sql.count_table, "history row count installed");
                    return;
                }
                Err(e) => {
                    let _ = self.one(Op::Simple("ROLLBACK")).await;
                    tracing::warn!(
                        error = %e,
                        "could not install the trigger that keeps {} (the fast path counts the \
                         rows instead, which costs more with many migrations); run Preflight \
                         once as the history table's owner to install it",
                        self.sql.count_table
                    );
                }
            }
        }
        // CockroachDB (no triggers here) or no privilege: the marker row `-1` tells the fast
        // path to count, in its single query.
        if !counted {
            let marker = self.sql.counter_marker.clone();
            if let Err(e) = self.one(Op::Simple(&marker)).await {
                if !is_creation_race(&e) {
                    tracing::warn!(error = %e, "could not create {}", self.sql.count_table);
                }
            }
        }
    }
}
