//! Server-side time limits of a migration: how long a statement may wait for a lock
//! (`lock_timeout`) or run (`statement_timeout`), set on the runner for every migration and
//! per migration with a directive (`-- preflight:lock-timeout 30s`,
//! `-- preflight:statement-timeout off`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A time limit: none, or a duration. Written `off` or as a whole number with a unit: `ms`,
/// `s`, `min` (or `m`), `h`.
///
/// ```
/// use std::time::Duration;
/// use preflight_runtime::Timeout;
/// assert_eq!("30s".parse(), Ok(Timeout::After(Duration::from_secs(30))));
/// assert_eq!("500ms".parse(), Ok(Timeout::After(Duration::from_millis(500))));
/// assert_eq!("off".parse(), Ok(Timeout::Off));
/// assert!("30".parse::<Timeout>().is_err()); // a unit is required
/// assert_eq!(Timeout::from(Duration::from_secs(2)).to_string(), "2s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timeout {
    /// No limit.
    Off,
    /// At most this long (a zero duration is written `off`: the server reads 0 as no limit).
    After(Duration),
}

impl Timeout {
    /// The duration, `None` for no limit.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Timeout::After(d) if !d.is_zero() => Some(d),
            _ => None,
        }
    }

    /// The value PostgreSQL's `set_config` takes: milliseconds, `0` for no limit.
    #[cfg_attr(not(feature = "pg-common"), allow(dead_code))]
    pub(crate) fn server_value(self) -> String {
        match self.duration() {
            // Round up: a sub-millisecond limit must not become 0 (no limit).
            Some(d) => format!("{}ms", d.as_micros().div_ceil(1000)),
            None => "0".to_owned(),
        }
    }
}

impl From<Duration> for Timeout {
    fn from(d: Duration) -> Timeout {
        Timeout::After(d)
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(d) = self.duration() else {
            return f.write_str("off");
        };
        let ms = d.as_millis();
        if ms % 3_600_000 == 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 {
            write!(f, "{}min", ms / 60_000)
        } else if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// Why a time limit does not parse (the message says what is accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutError(String);

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a time limit: write `off` or a whole number with a unit, e.g. `500ms`, \
             `30s`, `2min`, `1h`",
            self.0
        )
    }
}

impl std::error::Error for TimeoutError {}

impl FromStr for Timeout {
    type Err = TimeoutError;

    fn from_str(text: &str) -> Result<Timeout, TimeoutError> {
        let bad = || TimeoutError(text.to_owned());
        let t = text.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(Timeout::Off);
        }
        let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, unit) = t.split_at(digits);
        let n: u64 = number.parse().map_err(|_| bad())?;
        let ms_per_unit: u64 = match unit.trim_start() {
            "ms" => 1,
            "s" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        let ms = n.checked_mul(ms_per_unit).ok_or_else(bad)?;
        // PostgreSQL's limits are an `int` of milliseconds.
        if ms > i32::MAX as u64 {
            return Err(bad());
        }
        Ok(if ms == 0 {
            Timeout::Off
        } else {
            Timeout::After(Duration::from_millis(ms))
        })
    }
}

/// A migration's own limits, from its directives; `None` keeps the runner's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Timeouts {
    /// `-- preflight:lock-timeout ...`
    pub lock: Option<Timeout>,
    /// `-- preflight:statement-timeout ...`
    pub statement: Option<Timeout>,
}

impl Timeouts {
    /// No directive: the runner's settings apply.
    pub const NONE: Timeouts = Timeouts {
        lock: None,
        statement: None,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, ms) in [
            ("1h", 3_600_000),
            ("2min", 120_000),
            ("2m", 120_000),
            ("45 s", 45_000),
        ] {
            assert_eq!(text.parse(), Ok(Timeout::After(Duration::from_millis(ms))));
        }
        for bad in ["", "s", "1.5s", "-1s", "10 sec", "99999999999h", "30"] {
            let e = bad.parse::<Timeout>().unwrap_err();
            assert!(e.to_string().contains("`off`"), "{e}");
        }
        assert_eq!("0s".parse(), Ok(Timeout::Off));
        assert_eq!("OFF".parse(), Ok(Timeout::Off));
        for text in ["500ms", "30s", "2min", "1h", "off", "1500ms"] {
            let t: Timeout = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        assert_eq!(
            Timeout::After(Duration::from_micros(1)).server_value(),
            "1ms"
        );
        assert_eq!(Timeout::Off.server_value(), "0");
        assert_eq!(Timeout::After(Duration::ZERO).server_value(), "0");
    }
}
