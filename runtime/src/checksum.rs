//! Checksums of migration files and the chain hash of a migration set.
//!
//! The algorithms are a contract: the CLI, other tools and users' scripts recompute them.
//!
//! * **Checksum** of a migration: SHA-256 over the bytes of the file that holds its up
//!   migration (the `.up.sql`, the single `.sql` file, diesel's `up.sql`), after
//!   [normalising](normalise) it: one leading UTF-8 byte-order mark removed, and every CRLF
//!   (`\r\n`) replaced by LF (`\n`). A Windows checkout therefore has the same checksum. In a shell:
//!   `sed '1s/^\xEF\xBB\xBF//' FILE | sed 's/\r$//' | sha256sum` (for files that end in a newline).
//! * **Chain** of the n-th migration in version order:
//!   `chain(n) = SHA-256(chain(n-1) ‖ version(n) ‖ checksum(n))`, where `chain(0)` is 32 zero
//!   bytes, `version(n)` is the canonical version text in UTF-8 (`42`, `1.2`, see
//!   [`Version`]) and hashes are their 32 raw bytes. The chain of the last migration identifies
//!   the whole set, which is what lets a booting application check "is the database current?"
//!   with one query.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::Version;

/// A SHA-256 digest: a migration's checksum or a chain value. Displays as 64 lowercase hex digits.
///
/// ```
/// use preflight_runtime::Checksum;
/// let unix = Checksum::of("CREATE TABLE t (id int);\n");
/// let windows = Checksum::of("\u{feff}CREATE TABLE t (id int);\r\n");
/// assert_eq!(unix, windows);
/// assert_eq!(unix.to_string().len(), 64);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum([u8; 32]);

impl Checksum {
    /// The start of every chain: 32 zero bytes.
    pub const ZERO: Checksum = Checksum([0; 32]);

    /// The checksum of a migration file's text (normalised first, see the module docs).
    pub fn of(text: &str) -> Checksum {
        Checksum(Sha256::digest(normalise(text).as_bytes()).into())
    }

    /// The next link of the chain: `SHA-256(self ‖ version ‖ checksum)`.
    pub fn chain(&self, version: Version, checksum: &Checksum) -> Checksum {
        let mut hasher = Sha256::new();
        hasher.update(self.0);
        hasher.update(version.to_string().as_bytes());
        hasher.update(checksum.0);
        Checksum(hasher.finalize().into())
    }

    /// A digest from its raw bytes (used by the code that `embed!` generates).
    pub const fn from_bytes(bytes: [u8; 32]) -> Checksum {
        Checksum(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The text a checksum is computed over: a leading BOM removed, CRLF turned into LF.
pub fn normalise(text: &str) -> Cow<'_, str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.contains("\r\n") {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

/// Parses 64 hex digits (either case).
impl FromStr for Checksum {
    type Err = ChecksumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() != 64 || !s.is_ascii() {
            return Err(ChecksumError(s.to_owned()));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| ChecksumError(s.to_owned()))?;
        }
        Ok(Checksum(out))
    }
}

/// A text that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a SHA-256 checksum (64 hex digits)")]
pub struct ChecksumError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // sha256 of the empty string.
        assert_eq!(
            Checksum::of("").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Checksum::of("\u{feff}"), Checksum::of(""));
    }

    #[test]
    fn normalises_only_what_it_should() {
        assert_eq!(normalise("a\r\nb\r\n"), "a\nb\n");
        assert_eq!(normalise("\u{feff}x"), "x");
        // A lone CR and an inner BOM are content, not line endings.
        assert_eq!(normalise("a\rb"), "a\rb");
        assert_eq!(normalise("x\u{feff}"), "x\u{feff}");
        assert_ne!(Checksum::of("a\rb"), Checksum::of("a\nb"));
    }

    #[test]
    fn round_trips_hex() {
        let c = Checksum::of("select 1");
        assert_eq!(c.to_string().parse::<Checksum>().unwrap(), c);
        assert!("zz".parse::<Checksum>().is_err());
    }

    #[test]
    fn chain_depends_on_order_version_and_content() {
        let a = Checksum::of("a");
        let b = Checksum::of("b");
        let ab = Checksum::ZERO
            .chain(Version::new(1), &a)
            .chain(Version::new(2), &b);
        let ba = Checksum::ZERO
            .chain(Version::new(1), &b)
            .chain(Version::new(2), &a);
        let renumbered = Checksum::ZERO
            .chain(Version::new(1), &a)
            .chain(Version::new(3), &b);
        assert_ne!(ab, ba);
        assert_ne!(ab, renumbered);
    }
}
