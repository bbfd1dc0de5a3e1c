//! A composition of migration sets: the sets a run migrates together, and the one order in
//! which their migrations apply. A single [`Migrations`] is a composition of one set.

use crate::{Checksum, Migration, Migrations};

/// Checks a set's name: 1 to 63 bytes of ASCII letters, digits, `_`, `-` and `.` (a crate's
/// package name is one), so that it reads the same in the history table, in messages and on
/// the command line (`--dir auth=PATH`, `--set auth`).
///
/// ```
/// use preflight_runtime::composition::check_set_name;
/// assert!(check_set_name("auth").is_ok());
/// assert!(check_set_name("my-app_2.0").is_ok());
/// assert!(check_set_name("").is_err());
/// assert!(check_set_name("a=b").is_err());
/// ```
pub fn check_set_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 63 || !name.chars().all(allowed) {
        return Err(format!(
            "`{name}` is not a valid set name: use 1 to 63 ASCII letters, digits, `_`, `-` or `.`"
        ));
    }
    Ok(())
}

/// Migration sets migrated together, in one order.
#[derive(Debug, Clone)]
pub struct Composition<'m> {
    sets: Vec<&'m Migrations>,
    /// (set index, migration index) in the order migrations apply.
    order: Vec<(usize, usize)>,
}

/// A migration of a composition with its set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<'m> {
    pub set: &'m str,
    pub migration: &'m Migration,
}

impl<'m> Composition<'m> {
    /// The composition of one set.
    pub(crate) fn single(set: &'m Migrations) -> Composition<'m> {
        Composition {
            sets: vec![set],
            order: (0..set.len()).map(|i| (0, i)).collect(),
        }
    }

    /// The sets, in the order they were listed.
    pub fn sets(&self) -> impl ExactSizeIterator<Item = &'m Migrations> + '_ {
        self.sets.iter().copied()
    }

    /// The set named `name`.
    pub fn set(&self, name: &str) -> Option<&'m Migrations> {
        self.sets.iter().copied().find(|s| s.set() == name)
    }

    /// Whether the composition has more than one set (messages then name the set).
    pub(crate) fn is_multi(&self) -> bool {
        self.sets.len() > 1
    }

    /// The set's name as messages show it: `None` in a composition of one set.
    pub(crate) fn label(&self, set: &str) -> Option<String> {
        self.is_multi().then(|| set.to_owned())
    }

    /// Every migration, in the order they apply.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = Item<'m>> + '_ {
        self.order.iter().map(|&(s, m)| {
            let set = self.sets[s];
            Item {
                set: set.set(),
                migration: &set.as_slice()[m],
            }
        })
    }

    /// What identifies the database this composition migrates to (for test templates): the
    /// history layout, and each set's name and chain, in order.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn fingerprint(&self) -> Checksum {
        let mut text = String::from(crate::history::LAYOUT);
        for set in &self.sets {
            let chain = set.last().map_or(Checksum::ZERO, |m| m.chain());
            text.push_str(&format!("\n{}\n{chain}", set.set()));
        }
        Checksum::of(&text)
    }

    /// How many migrations.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether there is no migration at all.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
