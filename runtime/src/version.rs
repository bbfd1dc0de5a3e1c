//! Migration versions: decimal numbers of any length, optionally in parts.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

/// The version of a migration: one or more unsigned decimal numbers of any length, compared
/// part by part, each part numerically.
///
/// Nearly every layout has a single-part version (`42`, `20240131120000`; gobuffalo/pop writes
/// 20 digits, `20260703000000000000`, more than 64 bits hold); Flyway's multi-part versions
/// (`V1_2__x`, `V1.2__x`) compare part by part, so `1.2 < 1.11`. Leading zeros do not count
/// (`007` is `7`), and missing parts count as zero, so `1`, `1.0` and `1_0` are the same version,
/// exactly as Flyway treats them. Comparison is exact at any length: parts are compared as digit
/// strings (first by length once leading zeros are stripped, then digit by digit), never through
/// a lossy number type.
///
/// The canonical text ([`Display`](fmt::Display)) joins the significant parts with dots, without
/// leading zeros; it is what the history table stores and what the chain hash covers.
///
/// The type is `Copy` and two words wide: a version that fits one `u64` is held as that number;
/// any other is held as its canonical text, interned once per process (a process sees as many
/// distinct versions as its migration sets and history tables hold).
///
/// ```
/// use preflight_runtime::Version;
/// let a: Version = "1.2".parse().unwrap();
/// let b: Version = "1.11".parse().unwrap();
/// assert!(a < b);
/// assert_eq!(Version::new(42).to_string(), "42");
/// assert_eq!("1.0".parse::<Version>().unwrap(), Version::new(1));
/// let pop: Version = "20260703000000000001".parse().unwrap();
/// assert!(pop > Version::new(u64::MAX));
/// assert_eq!(pop.to_string(), "20260703000000000001");
/// assert_eq!(pop.as_u64(), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(Repr);

/// Invariant: `Text` only holds canonical text that is not a single part fitting a `u64`, so
/// that each version has exactly one representation (derived equality and hashing rely on it).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Repr {
    Number(u64),
    Text(&'static str),
}

/// Room for the decimal digits of a `u64`.
const U64_DIGITS: usize = 20;

impl Version {
    /// A single-part version.
    pub const fn new(version: u64) -> Self {
        Version(Repr::Number(version))
    }

    /// A version from its canonical text, as `embed!` writes it for a version that does not fit
    /// one `u64` (`"20260703000000000000"`, `"1.2"`). Evaluated in a `const`, text that is not
    /// canonical (leading zeros, trailing `.0`, a single part that fits a `u64`: use
    /// [`Version::new`]) fails to compile.
    #[doc(hidden)]
    pub const fn __canonical(text: &'static str) -> Self {
        assert!(
            is_canonical_text(text.as_bytes()),
            "not the canonical text of a version that needs more than one u64"
        );
        Version(Repr::Text(text))
    }

    /// The version as one number when it has a single significant part that fits a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            Repr::Number(v) => Some(v),
            Repr::Text(_) => None,
        }
    }

    /// The canonical text when the version does not fit one `u64` (what `embed!` writes out).
    #[doc(hidden)]
    pub fn __canonical_text(&self) -> Option<&'static str> {
        match self.0 {
            Repr::Number(_) => None,
            Repr::Text(t) => Some(t),
        }
    }

    /// Parses parts separated by any of `separators`, as found in a file name.
    pub(crate) fn parse_with(text: &str, separators: &[char]) -> Result<Self, VersionError> {
        let mut parts: Vec<&str> = Vec::new();
        for part in text.split(|c| separators.contains(&c)) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::NotANumber(text.to_owned()));
            }
            let significant = part.trim_start_matches('0');
            parts.push(if significant.is_empty() {
                "0"
            } else {
                significant
            });
        }
        while parts.len() > 1 && parts.last() == Some(&"0") {
            parts.pop();
        }
        if let [only] = parts.as_slice() {
            if let Ok(n) = only.parse::<u64>() {
                return Ok(Version::new(n));
            }
        }
        Ok(Version(Repr::Text(intern(parts.join(".")))))
    }

    /// The canonical text, without allocating for a `u64` version (written into `buf`).
    fn text<'a>(&'a self, buf: &'a mut [u8; U64_DIGITS]) -> &'a str {
        match self.0 {
            Repr::Text(t) => t,
            Repr::Number(mut n) => {
                let mut at = U64_DIGITS;
                loop {
                    at -= 1;
                    buf[at] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                // Only ASCII digits were written.
                std::str::from_utf8(&buf[at..]).unwrap_or("0")
            }
        }
    }
}

/// One interned copy of each distinct canonical text, leaked for the process's lifetime so that
/// `Version` stays `Copy`.
fn intern(text: String) -> &'static str {
    static TABLE: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut table = TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(existing) = table.get(text.as_str()) {
        return existing;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    table.insert(leaked);
    leaked
}

/// Whether `text` is canonical (dot-separated digit parts, no leading zeros, no trailing zero
/// part) and needs more than one `u64`. A `const fn`, so that `embed!`'s output is checked while
/// compiling.
const fn is_canonical_text(text: &[u8]) -> bool {
    if text.is_empty() {
        return false;
    }
    let mut parts = 0;
    let mut part_start = 0;
    let mut i = 0;
    while i <= text.len() {
        if i == text.len() || text[i] == b'.' {
            let len = i - part_start;
            if len == 0 || (len > 1 && text[part_start] == b'0') {
                return false;
            }
            parts += 1;
            if i == text.len() && len == 1 && text[part_start] == b'0' && parts > 1 {
                return false;
            }
            part_start = i + 1;
        } else if !text[i].is_ascii_digit() {
            return false;
        }
        i += 1;
    }
    if parts > 1 {
        return true;
    }
    // One part: canonical text only when it exceeds u64::MAX.
    let max = b"18446744073709551615";
    if text.len() != max.len() {
        return text.len() > max.len();
    }
    let mut j = 0;
    while j < max.len() {
        if text[j] != max[j] {
            return text[j] > max[j];
        }
        j += 1;
    }
    false
}

/// Compares two parts without leading zeros: the longer is larger, then digit by digit.
fn cmp_part(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        if let (Repr::Number(a), Repr::Number(b)) = (self.0, other.0) {
            return a.cmp(&b);
        }
        let (mut buf_a, mut buf_b) = ([0; U64_DIGITS], [0; U64_DIGITS]);
        let mut a = self.text(&mut buf_a).split('.');
        let mut b = other.text(&mut buf_b).split('.');
        loop {
            let ordering = match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                (Some(x), Some(y)) => cmp_part(x, y),
                // Missing parts are zero.
                (Some(x), None) => cmp_part(x, "0"),
                (None, Some(y)) => cmp_part("0", y),
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0; U64_DIGITS];
        // `pad` so that width and alignment (`{:<8}`) work in tables.
        f.pad(self.text(&mut buf))
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

impl From<u64> for Version {
    fn from(v: u64) -> Self {
        Version::new(v)
    }
}

/// Parses the canonical text (`42`, `1.2`); underscores are accepted as separators too, and
/// leading zeros are ignored.
impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse_with(s, &['.', '_'])
    }
}

/// Why a text is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// A part is empty or holds something other than ASCII digits.
    #[error(
        "`{0}` is not a version: expected digits, optionally in parts separated by `.` or `_`"
    )]
    NotANumber(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn orders_numerically_and_part_by_part() {
        assert!(v("2") < v("10"));
        assert!(v("1.2") < v("1.11"));
        assert!(v("1") < v("1.1"));
        assert!(v("1.9.9") < v("2"));
        assert_eq!(v("1.0.0"), v("1"));
        assert_eq!(v("1_2"), v("1.2"));
        assert_eq!(v("007"), Version::new(7));
        assert_eq!(v("1.02"), v("1.2"));
        assert!(v("1.0.1") > v("1"));
        assert!(v("0.5") < v("1"));
    }

    #[test]
    fn versions_of_any_length_compare_exactly() {
        let max = Version::new(u64::MAX);
        let above = v("18446744073709551616");
        assert!(max < above);
        assert_eq!(above.as_u64(), None);
        assert_eq!(v("018446744073709551615"), max);
        // pop: a 14-digit timestamp and a 6-digit sequence.
        let a = v("20260703000000000000");
        let b = v("20260703000000000001");
        let c = v("20260704000000000000");
        assert!(a < b && b < c);
        assert!(Version::new(20260703000000) < a);
        let long = "9".repeat(60);
        assert!(v(&long) > c);
        assert!(v(&format!("1{}", "0".repeat(60))) > v(&long));
        assert!(v(&format!("{long}.1")) > v(&long));
        assert_eq!(v(&format!("{long}.0")), v(&long));
        assert_eq!(
            v(&format!("000{long}")).to_string(),
            long,
            "leading zeros are not significant"
        );
    }

    #[test]
    fn equal_versions_hash_alike_and_are_interned_once() {
        use std::collections::HashSet;
        let set: HashSet<Version> = [
            v("20260703000000000000"),
            v("020260703000000000000"),
            v("20260703000000000000.0"),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 1);
        let (a, b) = (v("1.2"), v("1_2"));
        let (Repr::Text(x), Repr::Text(y)) = (a.0, b.0) else {
            panic!("multi-part versions are text")
        };
        assert!(std::ptr::eq(x, y));
    }

    #[test]
    fn displays_canonically() {
        assert_eq!(v("1.2.0").to_string(), "1.2");
        assert_eq!(Version::new(0).to_string(), "0");
        assert_eq!(v("0.5").to_string(), "0.5");
        assert_eq!(v("0.0").to_string(), "0");
        assert_eq!(Version::new(20240131120000).to_string(), "20240131120000");
        assert_eq!(Version::new(u64::MAX).to_string(), "18446744073709551615");
        assert_eq!(format!("{:<4}|", Version::new(7)), "7   |");
        assert_eq!(format!("{:<4}|", v("1.2")), "1.2 |");
    }

    #[test]
    fn canonical_constructor_matches_parsing() {
        const BIG: Version = Version::__canonical("20260703000000000000");
        const DOTTED: Version = Version::__canonical("1.2");
        assert_eq!(BIG, v("20260703000000000000"));
        assert_eq!(DOTTED, v("1.2"));
        assert_eq!(BIG.__canonical_text(), Some("20260703000000000000"));
        for bad in [
            "",
            "42",
            "01.2",
            "1.2.0",
            "1..2",
            "1.",
            ".1",
            "a",
            "18446744073709551615",
        ] {
            assert!(!is_canonical_text(bad.as_bytes()), "{bad:?}");
        }
        for good in ["1.2", "0.5", "18446744073709551616", "1.0.3"] {
            assert!(is_canonical_text(good.as_bytes()), "{good:?}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "a", "1..2", "-1", "1 ", "1.", "+1", "١"] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} accepted");
        }
    }
}
