//! The report's tables: one per scenario with a row per contender (floors included), and a
//! curve summarising a scenario measured at several sizes.

use crate::stats::{ratio, Samples};

/// One cell: samples, or a reason why there are none, plus remarks.
#[derive(Debug, Clone, Default)]
pub struct Measure {
    pub samples: Samples,
    pub notes: Vec<String>,
}

impl Measure {
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    pub fn median(&self) -> Option<f64> {
        self.samples.median()
    }
}

/// One contender of a scenario.
#[derive(Debug, Clone)]
pub struct Entry {
    pub who: String,
    /// A floor: what the scenario costs without any migration tool's bookkeeping.
    pub floor: bool,
    pub measure: Measure,
}

/// One scenario: a heading, what was done and how often, and a row per contender.
#[derive(Debug, Clone)]
pub struct Table {
    pub heading: String,
    /// Sentences under the heading: the rounds, the settings that differ.
    pub method: Vec<String>,
    pub entries: Vec<Entry>,
    /// Show the 95th percentile (many samples: test databases).
    pub p95: bool,
}

impl Table {
    pub fn new(heading: impl Into<String>) -> Table {
        Table {
            heading: heading.into(),
            method: Vec::new(),
            entries: Vec::new(),
            p95: false,
        }
    }

    pub fn say(&mut self, sentence: impl Into<String>) {
        self.method.push(sentence.into());
    }

    pub fn push(&mut self, who: impl Into<String>, floor: bool, measure: Measure) {
        self.entries.push(Entry {
            who: who.into(),
            floor,
            measure,
        });
    }

    /// The floor with the lowest median: what every ratio divides by.
    pub fn lowest_floor(&self) -> Option<&Entry> {
        self.entries
            .iter()
            .filter(|e| e.floor && e.measure.median().is_some())
            .min_by(|a, b| {
                let (a, b) = (a.measure.median(), b.measure.median());
                a.unwrap_or(f64::MAX).total_cmp(&b.unwrap_or(f64::MAX))
            })
    }

    pub fn entry(&self, who: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.who == who)
    }

    /// The table in Markdown, under a `####` heading.
    pub fn markdown(&self) -> String {
        let mut out = format!("#### {}\n\n", self.heading);
        for s in &self.method {
            out.push_str(s);
            out.push('\n');
        }
        if !self.method.is_empty() {
            out.push('\n');
        }
        let floor = self.lowest_floor();
        let base_label = floor.map_or("—".to_owned(), |f| format!("÷ {}", f.who));
        let p95 = if self.p95 { " p95 |" } else { "" };
        let p95_rule = if self.p95 { "---|" } else { "" };
        out.push_str(&format!(
            "| contender | median | min | max |{p95} samples | {base_label} | notes |\n\
             |---|---|---|---|{p95_rule}---|---|---|\n"
        ));
        for e in &self.entries {
            let s = &e.measure.samples;
            let value = |v: Option<f64>| v.map_or("—".to_owned(), |v| s.format(v));
            let is_base = floor.is_some_and(|f| f.who == e.who);
            let who = if is_base {
                format!("**{}**", e.who)
            } else {
                e.who.clone()
            };
            let r = floor
                .and_then(|f| ratio(s, &f.measure.samples))
                .unwrap_or_else(|| "—".to_owned());
            let p95 = if self.p95 {
                format!(" {} |", value(s.p95()))
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| {who} | {} | {} | {} |{p95} {} | {r} | {} |\n",
                value(s.median()),
                value(s.min()),
                value(s.max()),
                s.len(),
                cell_text(&e.measure.notes.join("; ")),
            ));
        }
        out.push('\n');
        out
    }
}

/// `1 round`, `5 rounds`.
pub fn rounds(n: usize) -> String {
    if n == 1 {
        "1 round".to_owned()
    } else {
        format!("{n} rounds")
    }
}

/// Table cells cannot hold `|` or line breaks.
fn cell_text(s: &str) -> String {
    s.replace('|', "/").replace('\n', " ")
}

/// A scenario measured at several sizes: one line per size, the median of each contender and
/// its ratio to that size's lowest floor.
pub fn curve(heading: &str, sizes: &[(u32, &Table)]) -> String {
    let Some((_, first)) = sizes.first() else {
        return String::new();
    };
    let names: Vec<&str> = first.entries.iter().map(|e| e.who.as_str()).collect();
    let mut out = format!(
        "#### {heading}\n\nMedians; in parentheses ÷ the lowest floor at that size (in bold). \
         Each size's own table, below, has the minimum and maximum.\n\n| N |"
    );
    for n in &names {
        out.push_str(&format!(" {n} |"));
    }
    out.push_str("\n|---|");
    for _ in &names {
        out.push_str("---|");
    }
    out.push('\n');
    for (n, t) in sizes {
        let floor = t.lowest_floor();
        out.push_str(&format!("| {n} |"));
        for name in &names {
            let cell = match t.entry(name) {
                Some(e) => {
                    let s = &e.measure.samples;
                    let median = s.median_text();
                    let is_base = floor.is_some_and(|f| f.who == e.who);
                    match floor.and_then(|f| ratio(s, &f.measure.samples)) {
                        _ if is_base => format!("**{median}**"),
                        Some(r) => format!("{median} ({r})"),
                        None => median,
                    }
                }
                None => "—".to_owned(),
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn measure(ms: &[u64]) -> Measure {
        let mut m = Measure::default();
        for &v in ms {
            m.samples.push(Duration::from_millis(v));
        }
        m
    }

    #[test]
    fn ratios_divide_by_the_lowest_floor_and_name_it() {
        let mut t = Table::new("x");
        t.push("floor: slow", true, measure(&[40]));
        t.push("floor: fast", true, measure(&[20]));
        t.push("tool", false, measure(&[30]));
        assert_eq!(
            t.lowest_floor().map(|f| f.who.as_str()),
            Some("floor: fast")
        );
        let md = t.markdown();
        assert!(md.contains("| ÷ floor: fast |"), "{md}");
        assert!(
            md.contains("| tool | 30.0 ms | 30.0 ms | 30.0 ms | 1 | 1.50× |"),
            "{md}"
        );
        assert!(md.contains("| **floor: fast** |"), "{md}");
        let c = curve("c", &[(10, &t)]);
        assert!(
            c.contains("| 10 | 40.0 ms (2.00×) | **20.0 ms** | 30.0 ms (1.50×) |"),
            "{c}"
        );
    }
}
