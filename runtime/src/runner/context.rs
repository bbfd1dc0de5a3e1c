//! What the locked work of a run shares: the settings, who applies, the lock it holds, and
//! the report it fills.

use crate::report::{Report, Warning};

use super::lock::LockGuard;
use super::Config;

/// What the locked work of a run shares.
pub(super) struct Ctx<'a> {
    pub cfg: &'a Config,
    pub applied_by: String,
    pub cockroach: bool,
    /// Whether the run composes several sets (messages then name the set).
    pub multi: bool,
    pub guard: &'a mut LockGuard,
    pub report: &'a mut Report,
}

impl Ctx<'_> {
    /// The set as messages show it: `None` in a composition of one set.
    pub fn label(&self, set: &str) -> Option<String> {
        self.multi.then(|| set.to_owned())
    }

    pub fn warn(&mut self, w: Warning) {
        tracing::warn!("{w}");
        self.report.warnings.push(w);
    }
}
