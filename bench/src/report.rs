//! The results table.

use crate::stats::{fmt_ms, ratio, Samples};

/// One cell: samples, or a reason why there are none, plus remarks.
#[derive(Debug, Clone, Default)]
pub struct Measure {
    pub samples: Samples,
    pub notes: Vec<String>,
    /// What the ratio column divides by, when it is not the row's floor (the storm compares a
    /// tool with its own single boot).
    pub base: Option<Samples>,
}

impl Measure {
    pub fn text(note: impl Into<String>) -> Measure {
        Measure {
            notes: vec![note.into()],
            ..Measure::default()
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    fn cell(&self) -> String {
        let mut parts = Vec::new();
        if !self.samples.is_empty() {
            parts.push(self.samples.cell());
        }
        parts.extend(self.notes.iter().cloned());
        if parts.is_empty() {
            "—".to_owned()
        } else {
            parts.join("; ")
        }
    }

    fn ratio_to(&self, floor: &Measure) -> String {
        ratio(&self.samples, self.base.as_ref().unwrap_or(&floor.samples))
    }

    pub fn median(&self) -> Option<f64> {
        self.samples.median()
    }
}

/// One scenario.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub scenario: String,
    pub floor: Measure,
    pub preflight: Measure,
    pub refinery: Measure,
    pub sqlx: Measure,
}

impl Row {
    pub fn new(scenario: impl Into<String>) -> Row {
        Row {
            scenario: scenario.into(),
            ..Row::default()
        }
    }
}

/// The table, in Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | floor | Preflight | refinery 0.10 | sqlx 0.9 | Preflight ÷ floor | refinery ÷ floor | sqlx ÷ floor |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.floor.cell(),
            r.preflight.cell(),
            r.refinery.cell(),
            r.sqlx.cell(),
            r.preflight.ratio_to(&r.floor),
            r.refinery.ratio_to(&r.floor),
            r.sqlx.ratio_to(&r.floor),
        ));
    }
    out
}

/// `+1.3 ms over the floor` (medians), for the no-op boot.
pub fn over_floor(value: &Measure, floor: &Measure) -> Option<String> {
    let d = value.median()? - floor.median()?;
    let sign = if d < 0.0 { "−" } else { "+" };
    Some(format!("{sign}{} vs floor", fmt_ms(d.abs())))
}
