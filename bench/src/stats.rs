//! Median and spread of a handful of samples.

use std::time::Duration;

/// Samples of one measured quantity, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    ms: Vec<f64>,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.ms.push(d.as_secs_f64() * 1000.0);
    }

    pub fn is_empty(&self) -> bool {
        self.ms.is_empty()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.ms.clone();
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

    pub fn min(&self) -> Option<f64> {
        self.sorted().first().copied()
    }

    pub fn max(&self) -> Option<f64> {
        self.sorted().last().copied()
    }

    /// `12.3 ms (11.9–13.0)`: median, then min–max.
    pub fn cell(&self) -> String {
        match (self.median(), self.min(), self.max()) {
            (Some(m), Some(lo), Some(hi)) => {
                format!("{} ({}–{})", fmt_ms(m), fmt_num(lo), fmt_num(hi))
            }
            _ => "—".to_owned(),
        }
    }
}

/// `12.3 ms`, `1.23 s`.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{} ms", fmt_num(ms))
    }
}

fn fmt_num(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}

/// `1.07×` for `value / floor`.
pub fn ratio(value: &Samples, floor: &Samples) -> String {
    match (value.median(), floor.median()) {
        (Some(v), Some(f)) if f > 0.0 => format!("{:.2}×", v / f),
        _ => "—".to_owned(),
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
    fn cells_and_ratios() {
        assert_eq!(samples(&[9, 10, 12]).cell(), "10.0 ms (9.0–12.0)");
        assert_eq!(ratio(&samples(&[20]), &samples(&[10])), "2.00×");
        assert_eq!(ratio(&samples(&[20]), &samples(&[])), "—");
    }
}
