//! Migration versions.

use std::fmt;
use std::str::FromStr;

/// How many dot- or underscore-separated parts a version may have (Flyway's `V1_2_3_4__x`).
pub const MAX_PARTS: usize = 4;

/// The version of a migration: one to [`MAX_PARTS`] unsigned integers, compared part by part.
///
/// Nearly every layout has a single-part version (`42`, `20240131120000`); Flyway's multi-part
/// versions (`V1_2__x`, `V1.2__x`) compare part by part, so `1.2 < 1.11`. Missing parts count as
/// zero, so `1`, `1.0` and `1_0` are the same version, exactly as Flyway treats them. The
/// canonical text ([`Display`](fmt::Display)) joins the significant parts with dots; it is what the
/// history table stores and what the chain hash covers.
///
/// ```
/// use preflight_runtime::Version;
/// let a: Version = "1.2".parse().unwrap();
/// let b: Version = "1.11".parse().unwrap();
/// assert!(a < b);
/// assert_eq!(Version::new(42).to_string(), "42");
/// assert_eq!("1.0".parse::<Version>().unwrap(), Version::new(1));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version([u64; MAX_PARTS]);

impl Version {
    /// A single-part version.
    pub const fn new(version: u64) -> Self {
        Version([version, 0, 0, 0])
    }

    /// A version from its parts, most significant first; missing parts are zero.
    ///
    /// Used by the code that `embed!` generates.
    pub const fn from_parts(parts: [u64; MAX_PARTS]) -> Self {
        Version(parts)
    }

    /// The parts, most significant first, padded with zeros to [`MAX_PARTS`].
    pub const fn parts(&self) -> [u64; MAX_PARTS] {
        self.0
    }

    /// The version as one number when it has a single significant part.
    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            [v, 0, 0, 0] => Some(v),
            _ => None,
        }
    }

    /// Parses parts separated by any of `separators`, as found in a file name.
    pub(crate) fn parse_with(text: &str, separators: &[char]) -> Result<Self, VersionError> {
        let mut parts = [0u64; MAX_PARTS];
        for (count, part) in text.split(|c| separators.contains(&c)).enumerate() {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::NotANumber(text.to_owned()));
            }
            if count == MAX_PARTS {
                return Err(VersionError::TooManyParts(text.to_owned()));
            }
            parts[count] = part
                .parse()
                .map_err(|_| VersionError::TooLarge(text.to_owned()))?;
        }
        Ok(Version(parts))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let significant = self.0.iter().rposition(|&p| p != 0).map_or(1, |i| i + 1);
        let text = self.0[..significant]
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".");
        // `pad` so that width and alignment (`{:<8}`) work in tables.
        f.pad(&text)
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

/// Parses the canonical text (`42`, `1.2`); underscores are accepted as separators too.
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
    /// A part does not fit in 64 bits.
    #[error("`{0}` is not a version: a part is larger than 18446744073709551615")]
    TooLarge(String),
    /// More than [`MAX_PARTS`] parts.
    #[error("`{0}` has more than {MAX_PARTS} version parts")]
    TooManyParts(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_numerically_and_part_by_part() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("2") < v("10"));
        assert!(v("1.2") < v("1.11"));
        assert!(v("1") < v("1.1"));
        assert!(v("1.9.9") < v("2"));
        assert_eq!(v("1.0.0"), v("1"));
        assert_eq!(v("1_2"), v("1.2"));
        assert_eq!(v("007"), Version::new(7));
    }

    #[test]
    fn displays_canonically() {
        assert_eq!("1.2.0".parse::<Version>().unwrap().to_string(), "1.2");
        assert_eq!(Version::new(0).to_string(), "0");
        assert_eq!(Version::from_parts([0, 5, 0, 0]).to_string(), "0.5");
        assert_eq!(Version::new(20240131120000).to_string(), "20240131120000");
        assert_eq!(format!("{:<4}|", Version::new(7)), "7   |");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "a",
            "1..2",
            "1.2.3.4.5",
            "-1",
            "1 ",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} accepted");
        }
    }
}
