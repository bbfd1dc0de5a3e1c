//! Median, spread and 95th percentile of a handful of samples.

use std::time::Duration;

/// What the samples measure, for formatting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unit {
    /// Durations, kept in milliseconds.
    #[default]
    Millis,
    /// Sizes in bytes (binary size, peak memory).
    Bytes,
}

/// Samples of one measured quantity.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<f64>,
    unit: Unit,
}

impl Samples {
    pub fn of(unit: Unit) -> Samples {
        Samples {
            values: Vec::new(),
            unit,
        }
    }

    pub fn push(&mut self, d: Duration) {
        self.values.push(d.as_secs_f64() * 1000.0);
    }

    /// A size in bytes (for [`Unit::Bytes`] samples).
    pub fn push_bytes(&mut self, bytes: u64) {
        self.unit = Unit::Bytes;
        self.values.push(bytes as f64);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn median(&self) -> Option<f64> {
        let v = self.sorted();
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    /// The 95th percentile, nearest rank: the smallest sample that at least 95% of the samples
    /// do not exceed.
    pub fn p95(&self) -> Option<f64> {
        let v = self.sorted();
        if v.is_empty() {
            return None;
        }
        let rank = (0.95 * v.len() as f64).ceil() as usize;
        v.get(rank.clamp(1, v.len()) - 1).copied()
    }

    pub fn min(&self) -> Option<f64> {
        self.sorted().first().copied()
    }

    pub fn max(&self) -> Option<f64> {
        self.sorted().last().copied()
    }

    /// One value in this unit: `12.3 ms`, `1.23 s`, `1.2 MiB`.
    pub fn format(&self, value: f64) -> String {
        match self.unit {
            Unit::Millis => fmt_ms(value),
            Unit::Bytes => fmt_bytes(value),
        }
    }

    /// The median formatted, or `—`.
    pub fn median_text(&self) -> String {
        self.median().map_or("—".to_owned(), |m| self.format(m))
    }
}

/// `12.3 ms`, `1.23 s`.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// `512 B`, `12.3 KiB`, `4.56 MiB`.
pub fn fmt_bytes(bytes: f64) -> String {
    let sign = if bytes < 0.0 { "−" } else { "" };
    let b = bytes.abs();
    if b >= 1024.0 * 1024.0 {
        format!("{sign}{:.2} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{sign}{:.1} KiB", b / 1024.0)
    } else {
        format!("{sign}{b:.0} B")
    }
}

/// `1.07×` for `value / base` (medians).
pub fn ratio(value: &Samples, base: &Samples) -> Option<String> {
    match (value.median(), base.median()) {
        (Some(v), Some(f)) if f > 0.0 => Some(format!("{:.2}×", v / f)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(ms: &[u64]) -> Samples {
        let mut s = Samples::default();
        for &m in ms {
            s.push(Duration::from_millis(m));
        }
        s
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(samples(&[5, 1, 3]).median(), Some(3.0));
        assert_eq!(samples(&[4, 1, 3, 2]).median(), Some(2.5));
        assert_eq!(samples(&[]).median(), None);
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(samples(&hundred).p95(), Some(95.0));
        assert_eq!(samples(&[7]).p95(), Some(7.0));
        assert_eq!(samples(&[1, 2, 3]).p95(), Some(3.0));
        assert_eq!(samples(&[]).p95(), None);
    }

    #[test]
    fn cells_and_ratios() {
        assert_eq!(
            ratio(&samples(&[20]), &samples(&[10])).as_deref(),
            Some("2.00×")
        );
        assert_eq!(ratio(&samples(&[20]), &samples(&[])), None);
        let mut b = Samples::default();
        b.push_bytes(3 * 1024 * 1024 / 2);
        assert_eq!(b.median_text(), "1.50 MiB");
        assert_eq!(samples(&[9, 10, 12]).median_text(), "10.0 ms");
    }
}
