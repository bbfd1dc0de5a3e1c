//! Drift: whether a live database's schema still is the one its migrations build.
//!
//! [`Runner::drift`](crate::Runner::drift) builds the migrations the live history records as
//! applied in a *scratch* database on the same server (created with a unique name and dropped
//! afterwards, on every path; SQLite: in memory), reads the catalogs of both, and reports what
//! the live database has that the migrations do not build (**added**: a hot fix by hand, a
//! forgotten index), what it lacks (**removed**), and objects whose definitions differ
//! (**changed**, attribute by attribute).
//!
//! What is compared (PostgreSQL): schemas, tables (kind, unlogged, partitioning, options,
//! row-level security enabled/forced), columns (type, default, not null, identity, generated
//! expression, collation), indexes (definition, uniqueness, partial predicate, validity),
//! constraints, views and materialised views, functions, procedures and aggregates, triggers
//! (definition, enabled), sequences, enums and domains, extensions, row-level security
//! policies. Every definition is read as the server prints it with every name
//! schema-qualified, so OIDs, object order, column order and the session's `search_path` never
//! count; objects that belong to an extension are the extension's. SQLite: tables (their
//! `CREATE` text, whitespace normalised), columns (`pragma table_xinfo`), indexes, views and
//! triggers from `sqlite_schema`.
//!
//! Preflight's own objects are not drift: everything in the history table's schema named like
//! the history table or starting with its name and `_` (`preflight_history`,
//! `preflight_history_log`, ...). Migrations the binary has but the database has not applied
//! are not built (they are [`Drift::pending`], not drift); versions applied but unknown to the
//! binary are listed in [`Drift::unknown`], and their objects show as added.

use std::collections::BTreeMap;
use std::fmt;

use crate::Version;

/// What [`Runner::drift`](crate::Runner::drift) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drift {
    /// The differences, by kind of object then name.
    pub differences: Vec<Difference>,
    /// The migrations built in the scratch database: those the live history records as
    /// applied, that this binary has.
    pub compared: Vec<Version>,
    /// Migrations of this binary the live database has not applied (not built, not drift).
    pub pending: Vec<Version>,
    /// Versions the live history records as applied that this binary does not have: their
    /// objects show as added.
    pub unknown: Vec<Version>,
}

impl Drift {
    /// Whether the live schema is exactly what the migrations build.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// One object that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Difference {
    /// What kind of object.
    pub kind: ObjectKind,
    /// Its name, schema-qualified and quoted where needed (`public.users`,
    /// `public.users.email` for a column, `public.f(integer)` for a function).
    pub name: String,
    /// How it differs.
    pub change: Change,
}

/// How an object differs between the live database and the migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Only in the live database; its attributes.
    Added(Vec<Attribute>),
    /// Only in what the migrations build; its attributes.
    Removed(Vec<Attribute>),
    /// In both, with these attributes different.
    Changed(Vec<AttributeChange>),
}

impl Change {
    /// `added`, `removed` or `changed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Added(_) => "added",
            Change::Removed(_) => "removed",
            Change::Changed(_) => "changed",
        }
    }
}

/// An attribute of an object: `definition` (the object itself, as the server prints it),
/// `type`, `default`, `not null`, `unique`, `predicate`, `enabled`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// An attribute that differs; `None` where the object does not have it (a column without a
/// default, a non-unique index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeChange {
    /// Its name.
    pub name: String,
    /// In the live database.
    pub live: Option<String>,
    /// In what the migrations build.
    pub built: Option<String>,
}

/// The kinds of objects drift compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A schema.
    Schema,
    /// An extension.
    Extension,
    /// An enum type.
    Enum,
    /// A domain.
    Domain,
    /// A sequence.
    Sequence,
    /// A table (also partitioned and foreign tables).
    Table,
    /// A column of a table.
    Column,
    /// A constraint of a table (primary key, unique, check, foreign key, exclusion).
    Constraint,
    /// An index that does not back a constraint.
    Index,
    /// A view.
    View,
    /// A materialised view.
    MaterializedView,
    /// A function.
    Function,
    /// A procedure.
    Procedure,
    /// An aggregate.
    Aggregate,
    /// A trigger.
    Trigger,
    /// A row-level security policy.
    Policy,
}

impl ObjectKind {
    const ALL: [ObjectKind; 16] = [
        ObjectKind::Schema,
        ObjectKind::Extension,
        ObjectKind::Enum,
        ObjectKind::Domain,
        ObjectKind::Sequence,
        ObjectKind::Table,
        ObjectKind::Column,
        ObjectKind::Constraint,
        ObjectKind::Index,
        ObjectKind::View,
        ObjectKind::MaterializedView,
        ObjectKind::Function,
        ObjectKind::Procedure,
        ObjectKind::Aggregate,
        ObjectKind::Trigger,
        ObjectKind::Policy,
    ];

    /// How the catalog queries and messages name it (`materialized view`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Schema => "schema",
            ObjectKind::Extension => "extension",
            ObjectKind::Enum => "enum",
            ObjectKind::Domain => "domain",
            ObjectKind::Sequence => "sequence",
            ObjectKind::Table => "table",
            ObjectKind::Column => "column",
            ObjectKind::Constraint => "constraint",
            ObjectKind::Index => "index",
            ObjectKind::View => "view",
            ObjectKind::MaterializedView => "materialized view",
            ObjectKind::Function => "function",
            ObjectKind::Procedure => "procedure",
            ObjectKind::Aggregate => "aggregate",
            ObjectKind::Trigger => "trigger",
            ObjectKind::Policy => "policy",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A database's schema as the catalog queries read it: each object's attributes, by kind and
/// name. The attribute `definition` stands for the object itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Catalog {
    objects: BTreeMap<(ObjectKind, String), BTreeMap<String, String>>,
}

impl Catalog {
    /// Records one attribute read by a catalog query (`kind` as [`ObjectKind::as_str`]
    /// names it; an empty attribute name is the definition).
    pub fn insert(&mut self, kind: &str, name: String, attribute: &str, value: String) {
        let Some(kind) = ObjectKind::parse(kind) else {
            tracing::warn!(kind, "a catalog query returned an unknown kind of object");
            return;
        };
        let attribute = if attribute.is_empty() {
            "definition"
        } else {
            attribute
        };
        self.objects
            .entry((kind, name))
            .or_default()
            .insert(attribute.to_owned(), value);
    }

    /// How many objects it holds.
    pub fn len(&self) -> usize {
        self.objects.len()
    }
}

fn attributes(map: &BTreeMap<String, String>) -> Vec<Attribute> {
    map.iter()
        .map(|(name, value)| Attribute {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

/// The differences between the live catalog and the one the migrations built.
pub(crate) fn compare(live: &Catalog, built: &Catalog) -> Vec<Difference> {
    let mut differences = Vec::new();
    let keys: std::collections::BTreeSet<&(ObjectKind, String)> =
        live.objects.keys().chain(built.objects.keys()).collect();
    for key in keys {
        let (kind, name) = (key.0, key.1.clone());
        let change = match (live.objects.get(key), built.objects.get(key)) {
            (Some(l), None) => Change::Added(attributes(l)),
            (None, Some(b)) => Change::Removed(attributes(b)),
            (Some(l), Some(b)) if l != b => {
                let names: std::collections::BTreeSet<&String> = l.keys().chain(b.keys()).collect();
                Change::Changed(
                    names
                        .into_iter()
                        .filter(|n| l.get(*n) != b.get(*n))
                        .map(|n| AttributeChange {
                            name: n.clone(),
                            live: l.get(n).cloned(),
                            built: b.get(n).cloned(),
                        })
                        .collect(),
                )
            }
            _ => continue,
        };
        differences.push(Difference { kind, name, change });
    }
    differences
}

/// The longest value a line of the table shows (the JSON of the CLI has them whole).
const SHOWN: usize = 100;

/// One line of text, at most [`SHOWN`] characters.
fn shown(value: &str) -> String {
    let flat = value.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= SHOWN {
        return flat;
    }
    let cut: String = flat.chars().take(SHOWN - 1).collect();
    format!("{cut}…")
}

impl Difference {
    /// What differs, in one line: the definition of an added or removed object, or each
    /// changed attribute as `name: live X, migrations Y`.
    pub fn detail(&self) -> String {
        let one = |attrs: &[Attribute]| {
            attrs
                .iter()
                .find(|a| a.name == "definition" || a.name == "type")
                .or(attrs.first())
                .map_or(String::new(), |a| {
                    if a.name == "definition" {
                        shown(&a.value)
                    } else {
                        shown(&format!("{} {}", a.name, a.value))
                    }
                })
        };
        match &self.change {
            Change::Added(attrs) | Change::Removed(attrs) => one(attrs),
            Change::Changed(changes) => changes
                .iter()
                .map(|c| {
                    let side = |v: &Option<String>| v.as_deref().map_or("(none)".to_owned(), shown);
                    format!(
                        "{}: live {}, migrations {}",
                        c.name,
                        side(&c.live),
                        side(&c.built)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// A readable table: a summary line, then one line per difference (`CHANGE KIND NAME
/// DETAIL`), padded to columns.
impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let basis = match (self.compared.first(), self.compared.last()) {
            (Some(first), Some(last)) => format!(
                "{} migration(s), {first}..{last}, built in a scratch database",
                self.compared.len()
            ),
            _ => "no migration applied: compared with an empty database".to_owned(),
        };
        if self.is_clean() {
            writeln!(
                f,
                "no drift: the schema is what the migrations build ({basis})"
            )?;
        } else {
            writeln!(
                f,
                "drift: {} difference(s) between the live schema and what the migrations build \
                 ({basis})",
                self.differences.len()
            )?;
            let rows: Vec<[String; 4]> = self
                .differences
                .iter()
                .map(|d| {
                    [
                        d.change.as_str().to_owned(),
                        d.kind.to_string(),
                        d.name.clone(),
                        d.detail(),
                    ]
                })
                .collect();
            let header = ["CHANGE", "KIND", "NAME", "DETAIL"].map(str::to_owned);
            let mut widths = [0usize; 3];
            for row in std::iter::once(&header).chain(&rows) {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            for row in std::iter::once(&header).chain(&rows) {
                let mut line = String::new();
                for (cell, w) in row.iter().zip(widths) {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
                }
                line.push_str(&row[3]);
                writeln!(f, "{}", line.trim_end())?;
            }
        }
        if !self.pending.is_empty() {
            writeln!(
                f,
                "not applied yet, not compared: {}",
                crate::error::list(&self.pending)
            )?;
        }
        if !self.unknown.is_empty() {
            writeln!(
                f,
                "applied but not in this binary (their objects show as added): {}",
                crate::error::list(&self.unknown)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(rows: &[(&str, &str, &str, &str)]) -> Catalog {
        let mut c = Catalog::default();
        for (kind, name, attr, value) in rows {
            c.insert(kind, (*name).to_owned(), attr, (*value).to_owned());
        }
        c
    }

    #[test]
    fn compares_by_kind_and_name_whatever_the_order() {
        let live = catalog(&[
            ("column", "public.t.b", "type", "text"),
            ("table", "public.t", "", "table"),
            ("column", "public.t.a", "type", "integer"),
            ("column", "public.t.a", "not null", "yes"),
            (
                "index",
                "public.t_b",
                "",
                "CREATE INDEX t_b ON public.t USING btree (b)",
            ),
        ]);
        let built = catalog(&[
            ("table", "public.t", "", "table"),
            ("column", "public.t.a", "type", "bigint"),
            ("column", "public.t.b", "type", "text"),
            ("view", "public.v", "", " SELECT 1;"),
        ]);
        let d = compare(&live, &built);
        let summary: Vec<(&str, &str, &str)> = d
            .iter()
            .map(|d| (d.change.as_str(), d.kind.as_str(), d.name.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("changed", "column", "public.t.a"),
                ("added", "index", "public.t_b"),
                ("removed", "view", "public.v"),
            ]
        );
        assert_eq!(
            d[0].detail(),
            "not null: live yes, migrations (none); type: live integer, migrations bigint"
        );
        assert!(compare(&live, &live).is_empty());
        let report = Drift {
            differences: d,
            compared: vec![Version::new(1), Version::new(2)],
            ..Drift::default()
        };
        let text = report.to_string();
        assert!(text.starts_with("drift: 3 difference(s)"), "{text}");
        assert!(
            text.contains("\nCHANGE   KIND    NAME        DETAIL\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "\nadded    index   public.t_b  CREATE INDEX t_b ON public.t USING btree (b)\n"
            ),
            "{text}"
        );
        assert_eq!(shown(&"x".repeat(300)).chars().count(), SHOWN);
    }
}
