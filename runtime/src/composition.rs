//! A composition of migration sets: the sets a run migrates together, and the one order in
//! which their migrations apply. A single [`Migrations`] is a composition of one set.
//!
//! A library crate ships its own migrations (`embed!("migrations", set = "auth")`); the
//! application composes the sets it uses ([`compose`]) and migrates them as one: one history
//! table (its `set` column tells them apart), one lock, one fast-path query. Versions compare
//! within a set, so `auth` 3 and `app` 3 are different migrations. A migration may require
//! another set's migration (`-- preflight:requires auth 3`).
//!
//! **The order.** Each set's migrations run in version order; a migration runs after every
//! migration it requires; otherwise the sets come in the order they were listed. Concretely,
//! [`compose`] repeatedly takes the next migration of the first listed set whose next migration
//! has its requirements placed already. When no set can go on, the requirements form a cycle,
//! which is an error. Out-of-order, missing and ahead-of-binary are decided per set, against
//! that set's own history rows.
//!
//! ```
//! use preflight_runtime::{compose, MigrationSpec, Migrations};
//! let auth = Migrations::from_specs(vec![
//!     MigrationSpec::new(1, "users", "CREATE TABLE users (id int);"),
//!     MigrationSpec::new(2, "sessions", "CREATE TABLE sessions (id int);"),
//! ]).unwrap().named("auth");
//! let app = Migrations::from_specs(vec![
//!     MigrationSpec::new(1, "posts", "CREATE TABLE posts (author int);").requires("auth", 1u64),
//! ]).unwrap().named("app");
//! // Listed first, but app 1 needs auth 1: auth 1, app 1, then auth 2.
//! let all = compose([&app, &auth]).unwrap();
//! let order: Vec<String> = all.order().map(|(set, m)| format!("{set} {}", m.version())).collect();
//! assert_eq!(order, ["auth 1", "app 1", "auth 2"]);
//! ```

use std::fmt;

use crate::{Checksum, Migration, Migrations, Requirement, Version};

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

/// Why sets cannot be composed (nothing was touched: `compose` reads no database).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// No set was given.
    #[error("nothing to compose: give at least one migration set")]
    Empty,
    /// A set's name is not valid (see [`check_set_name`]).
    #[error("{0}")]
    InvalidName(String),
    /// Two sets have the same name.
    #[error(
        "two sets are named `{0}`: versions compare within a set, so each set needs a name of \
         its own (`embed!(\"migrations\", set = \"...\")`, `Migrations::named`)"
    )]
    DuplicateSet(String),
    /// A requirement names a set that is not composed, or a version that set does not have.
    #[error(
        "migration {migration} requires `{required}`, but {why}: add that set to the \
         composition, or fix the `-- preflight:requires` line"
    )]
    UnknownRequirement {
        /// The requiring migration: `` `app` 2 (migrations/2_x.sql) ``.
        migration: String,
        /// What it requires: `auth 3`.
        required: String,
        /// Why the requirement is unknown.
        why: String,
    },
    /// A migration requires a migration of its own set that does not come before it.
    #[error(
        "migration `{set}` {version} ({path}) requires migration {required} of its own set, \
         which does not come before it: migrations of one set run in version order; remove the \
         line"
    )]
    OwnSet {
        /// The set.
        set: String,
        /// The requiring migration.
        version: Version,
        /// Its file.
        path: String,
        /// The version it requires.
        required: Version,
    },
    /// Requirements that wait for each other: no order satisfies them.
    #[error(
        "the requirements between sets form a cycle, so no order can satisfy them: {}; remove \
         one of these `-- preflight:requires` lines",
        .0.join(", which waits for ")
    )]
    Cycle(Vec<String>),
}

/// Composes migration sets into the one order their migrations apply in (see the module docs),
/// validated before any I/O: set names (valid, distinct), requirements (a composed set, a
/// version it has, no cycle). The result runs like a single set: `all.run(&mut conn)`, and
/// every other operation ([`Composition::runner`] to change settings).
///
/// ```no_run
/// # fn f(app: &preflight_runtime::Migrations, auth: &preflight_runtime::Migrations, client: &mut postgres::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let all = preflight_runtime::compose([app, auth])?;
/// all.run(client)?;
/// # Ok(()) }
/// ```
pub fn compose<'m>(
    sets: impl IntoIterator<Item = &'m Migrations>,
) -> Result<Composition<'m>, ComposeError> {
    let sets: Vec<&'m Migrations> = sets.into_iter().collect();
    if sets.is_empty() {
        return Err(ComposeError::Empty);
    }
    for (i, set) in sets.iter().enumerate() {
        check_set_name(set.set()).map_err(ComposeError::InvalidName)?;
        if sets[..i].iter().any(|s| s.set() == set.set()) {
            return Err(ComposeError::DuplicateSet(set.set().to_owned()));
        }
    }
    for set in &sets {
        for m in set.iter() {
            for r in m.requires() {
                check_requirement(&sets, set, m, r)?;
            }
        }
    }
    let order = order(&sets)?;
    Ok(Composition { sets, order })
}

/// Checks every requirement of the composition's sets (a set run on its own becomes a
/// composition without [`compose`]'s checks: a requirement of another set is refused here).
pub(crate) fn check_requirements(comp: &Composition<'_>) -> Result<(), ComposeError> {
    for set in &comp.sets {
        for m in set.iter() {
            for r in m.requires() {
                check_requirement(&comp.sets, set, m, r)?;
            }
        }
    }
    Ok(())
}

fn check_requirement(
    sets: &[&Migrations],
    set: &Migrations,
    m: &Migration,
    r: &Requirement,
) -> Result<(), ComposeError> {
    if r.set() == set.set() {
        if r.version() >= m.version() || set.get(r.version()).is_none() {
            return Err(ComposeError::OwnSet {
                set: set.set().to_owned(),
                version: m.version(),
                path: m.path().to_owned(),
                required: r.version(),
            });
        }
        return Ok(());
    }
    let why = match sets.iter().find(|s| s.set() == r.set()) {
        None => format!(
            "no set `{}` is composed (the sets are {})",
            r.set(),
            sets.iter()
                .map(|s| format!("`{}`", s.set()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(other) if other.get(r.version()).is_none() => {
            format!("set `{}` has no migration {}", r.set(), r.version())
        }
        Some(_) => return Ok(()),
    };
    Err(ComposeError::UnknownRequirement {
        migration: format!("`{}` {} ({})", set.set(), m.version(), m.path()),
        required: r.to_string(),
        why,
    })
}

/// The order: repeatedly the next migration of the first listed set whose next migration has
/// every requirement placed.
fn order(sets: &[&Migrations]) -> Result<Vec<(usize, usize)>, ComposeError> {
    let total: usize = sets.iter().map(|s| s.len()).sum();
    let mut next = vec![0usize; sets.len()];
    let mut order = Vec::with_capacity(total);
    // Whether migration `version` of set `name` is placed: its set's next index is past it.
    let placed = |next: &[usize], name: &str, version: Version| {
        sets.iter()
            .zip(next)
            .any(|(s, &n)| s.set() == name && n > 0 && s.as_slice()[n - 1].version() >= version)
    };
    while order.len() < total {
        let ready = (0..sets.len()).find(|&i| {
            sets[i].as_slice().get(next[i]).is_some_and(|m| {
                m.requires()
                    .iter()
                    .all(|r| placed(&next, r.set(), r.version()))
            })
        });
        let Some(i) = ready else {
            return Err(ComposeError::Cycle(cycle(sets, &next)));
        };
        order.push((i, next[i]));
        next[i] += 1;
    }
    Ok(order)
}

/// The loop of waiting migrations when no set can go on: from the first waiting set, each
/// waits for a migration of another waiting set, until one repeats.
fn cycle(sets: &[&Migrations], next: &[usize]) -> Vec<String> {
    let waiting = |i: usize| -> Option<(&Migration, usize)> {
        let m = sets[i].as_slice().get(next[i])?;
        let r = m.requires().iter().find(|r| {
            !sets.iter().zip(next).any(|(s, &n)| {
                s.set() == r.set() && n > 0 && s.as_slice()[n - 1].version() >= r.version()
            })
        })?;
        let j = sets.iter().position(|s| s.set() == r.set())?;
        Some((m, j))
    };
    let mut seen = Vec::new();
    let mut i = (0..sets.len())
        .find(|&i| next[i] < sets[i].len())
        .unwrap_or(0);
    while !seen.contains(&i) {
        seen.push(i);
        match waiting(i) {
            Some((_, j)) => i = j,
            None => break,
        }
    }
    let start = seen.iter().position(|&s| s == i).unwrap_or(0);
    let mut names: Vec<String> = seen[start..]
        .iter()
        .filter_map(|&s| {
            let (m, _) = waiting(s)?;
            Some(format!(
                "`{}` {} ({})",
                sets[s].set(),
                m.version(),
                m.path()
            ))
        })
        .collect();
    if let Some(first) = names.first().cloned() {
        names.push(first);
    }
    names
}

impl<'m> From<&'m Migrations> for Composition<'m> {
    fn from(set: &'m Migrations) -> Composition<'m> {
        Composition::single(set)
    }
}

impl<'m> From<&Composition<'m>> for Composition<'m> {
    fn from(composition: &Composition<'m>) -> Composition<'m> {
        composition.clone()
    }
}

impl fmt::Display for Composition<'_> {
    /// The sets, as listed: `app + auth`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.sets.iter().map(|s| s.set()).collect();
        f.write_str(&names.join(" + "))
    }
}

impl<'m> Composition<'m> {
    /// Every migration with its set's name, in the order they apply.
    pub fn order(&self) -> impl Iterator<Item = (&'m str, &'m Migration)> + '_ {
        self.iter().map(|i| (i.set, i.migration))
    }

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

    /// The composition of `subsets` (one per set, in this composition's order of sets, each a
    /// subset of that set's migrations) in this composition's order.
    #[cfg_attr(not(any(feature = "pg-common", feature = "sqlite")), allow(dead_code))]
    pub(crate) fn restricted<'s>(&self, subsets: &'s [Migrations]) -> Composition<'s> {
        let order = self
            .order
            .iter()
            .filter_map(|&(s, m)| {
                let version = self.sets[s].as_slice()[m].version();
                let subset = subsets.get(s)?;
                let i = subset
                    .as_slice()
                    .binary_search_by_key(&version, |x| x.version())
                    .ok()?;
                Some((s, i))
            })
            .collect();
        Composition {
            sets: subsets.iter().collect(),
            order,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MigrationSpec;

    fn set(name: &str, specs: Vec<MigrationSpec>) -> Migrations {
        Migrations::from_specs(specs)
            .unwrap()
            .named(name.to_owned())
    }

    fn plain(name: &str, versions: &[u64]) -> Migrations {
        set(
            name,
            versions
                .iter()
                .map(|&v| MigrationSpec::new(v, &format!("{name}{v}"), "select 1;"))
                .collect(),
        )
    }

    fn order(c: &Composition<'_>) -> Vec<String> {
        c.order()
            .map(|(s, m)| format!("{s} {}", m.version()))
            .collect()
    }

    #[test]
    fn orders_each_set_requirements_first_then_as_listed() {
        let app = set(
            "app",
            vec![
                MigrationSpec::new(1, "a", "select 1;"),
                MigrationSpec::new(2, "b", "select 1;").requires("auth", 3u64),
                MigrationSpec::new(3, "c", "select 1;"),
            ],
        );
        let auth = plain("auth", &[1, 2, 3, 4]);
        let c = compose([&app, &auth]).unwrap();
        assert_eq!(
            order(&c),
            ["app 1", "auth 1", "auth 2", "auth 3", "app 2", "app 3", "auth 4"]
        );
        // Listed the other way, with no requirement in the way: auth first, whole.
        let c = compose([&auth, &app]).unwrap();
        assert_eq!(order(&c)[..4], ["auth 1", "auth 2", "auth 3", "auth 4"]);
        assert_eq!(c.to_string(), "auth + app");
        assert_eq!(c.len(), 7);
    }

    #[test]
    fn refuses_what_cannot_be_composed() {
        let app = plain("app", &[1]);
        let twin = plain("app", &[2]);
        assert_eq!(
            compose([&app, &twin]).unwrap_err(),
            ComposeError::DuplicateSet("app".into())
        );
        assert_eq!(
            compose(Vec::<&Migrations>::new()).unwrap_err(),
            ComposeError::Empty
        );
        let bad = plain("a b", &[1]);
        assert!(matches!(compose([&bad]), Err(ComposeError::InvalidName(_))));

        let needs = |set: &str, v: u64| {
            self::set(
                "app",
                vec![MigrationSpec::new(1, "a", "select 1;").requires(set, v)],
            )
        };
        let auth = plain("auth", &[1, 2]);
        let unknown_set = needs("billing", 1);
        let err = compose([&unknown_set, &auth]).unwrap_err();
        assert!(
            err.to_string().contains("no set `billing` is composed"),
            "{err}"
        );
        assert!(err.to_string().contains("1_a.sql"), "{err}");
        let unknown_version = needs("auth", 9);
        let err = compose([&unknown_version, &auth]).unwrap_err();
        assert!(
            err.to_string().contains("set `auth` has no migration 9"),
            "{err}"
        );
        let own = needs("app", 1);
        assert!(matches!(compose([&own]), Err(ComposeError::OwnSet { .. })));
    }

    #[test]
    fn refuses_a_cycle_naming_it() {
        let a = set(
            "a",
            vec![
                MigrationSpec::new(1, "a1", "select 1;"),
                MigrationSpec::new(2, "a2", "select 1;").requires("b", 1u64),
            ],
        );
        let b = set(
            "b",
            vec![MigrationSpec::new(1, "b1", "select 1;").requires("c", 1u64)],
        );
        let c = set(
            "c",
            vec![MigrationSpec::new(1, "c1", "select 1;").requires("a", 2u64)],
        );
        let err = compose([&a, &b, &c]).unwrap_err();
        let ComposeError::Cycle(loop_) = &err else {
            panic!("{err}");
        };
        assert_eq!(loop_.len(), 4, "{err}");
        assert_eq!(loop_.first(), loop_.last());
        let text = err.to_string();
        for part in ["`a` 2", "`b` 1", "`c` 1", "which waits for"] {
            assert!(text.contains(part), "{part}: {text}");
        }
        // Without the last link there is an order.
        let c = plain("c", &[1]);
        assert_eq!(
            order(&compose([&a, &b, &c]).unwrap()),
            ["a 1", "c 1", "b 1", "a 2"]
        );
    }
}
