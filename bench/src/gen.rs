//! The generated migration sets, written as files (sqlx's `{version}_{name}.sql` layout) so that
//! every tool reads the very same SQL.

use std::path::{Path, PathBuf};

/// What the migrations do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One cheap statement each: the first creates a table, the others insert one row.
    Light,
    /// A table with a primary key and a secondary index each.
    DdlHeavy,
}

impl Shape {
    pub fn label(self) -> &'static str {
        match self {
            Shape::Light => "light",
            Shape::DdlHeavy => "ddl",
        }
    }

    fn sql(self, version: u32) -> String {
        match (self, version) {
            (Shape::Light, 1) => {
                "CREATE TABLE bench_light (id integer PRIMARY KEY, note text);\n".to_owned()
            }
            (Shape::Light, v) => format!("INSERT INTO bench_light VALUES ({v}, 'row {v}');\n"),
            (Shape::DdlHeavy, v) => format!(
                "CREATE TABLE bench_t{v} (\n    id bigint PRIMARY KEY,\n    a integer NOT NULL,\n    \
                 b text,\n    created_at timestamptz NOT NULL DEFAULT now()\n);\n\
                 CREATE INDEX bench_t{v}_a_idx ON bench_t{v} (a);\n"
            ),
        }
    }
}

/// One generated migration.
#[derive(Debug, Clone)]
pub struct Generated {
    pub version: u32,
    pub name: String,
    pub sql: String,
}

/// A generated set on disk.
#[derive(Debug, Clone)]
pub struct Set {
    pub dir: PathBuf,
    pub migrations: Vec<Generated>,
    /// All bodies concatenated, for `psql -1 -f`.
    pub all_sql: PathBuf,
}

/// The migrations of a set, in memory.
pub fn migrations(shape: Shape, count: u32) -> Vec<Generated> {
    (1..=count)
        .map(|v| Generated {
            version: v,
            name: format!("{}_{v}", shape.label()),
            sql: shape.sql(v),
        })
        .collect()
}

/// Writes `count` migrations of `shape` under `root`, plus their concatenation.
pub fn write(root: &Path, shape: Shape, count: u32) -> Set {
    let dir = root.join(format!("{}_{count}", shape.label()));
    write_dir(&dir, &migrations(shape, count));
    let all_sql = root.join(format!("{}_{count}.all.sql", shape.label()));
    std::fs::write(&all_sql, concatenate(&migrations(shape, count)))
        .expect("write the concatenated SQL file");
    Set {
        dir,
        migrations: migrations(shape, count),
        all_sql,
    }
}

/// The bodies, one after the other.
pub fn concatenate(migrations: &[Generated]) -> String {
    migrations.iter().map(|m| m.sql.as_str()).collect()
}

/// Writes the files of `migrations` into `dir` (created, emptied first).
pub fn write_dir(dir: &Path, migrations: &[Generated]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create the migration directory");
    for m in migrations {
        std::fs::write(dir.join(file_name(m)), &m.sql).expect("write a migration file");
    }
}

/// `0042_light_42.sql`
pub fn file_name(m: &Generated) -> String {
    format!("{:04}_{}.sql", m.version, m.name)
}

/// Reads back a directory written by [`write_dir`] (for the storm's child processes).
pub fn read_dir(dir: &Path) -> Result<Vec<Generated>, String> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {dir:?}: {e}"))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {dir:?}: {e}"))?
            .path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".sql"))
        else {
            continue;
        };
        let Some((version, name)) = stem.split_once('_') else {
            continue;
        };
        let version = version
            .parse()
            .map_err(|_| format!("not a generated migration: {path:?}"))?;
        let sql =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
        out.push(Generated {
            version,
            name: name.to_owned(),
            sql,
        });
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back_the_same_set() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let set = write(tmp.path(), Shape::DdlHeavy, 12);
        let back = read_dir(&set.dir).expect("read back");
        assert_eq!(back.len(), 12);
        assert_eq!(back[11].version, 12);
        assert_eq!(back[11].name, "ddl_12");
        assert_eq!(back[11].sql, set.migrations[11].sql);
        let all = std::fs::read_to_string(&set.all_sql).expect("read all");
        assert_eq!(all.matches("CREATE INDEX").count(), 12);
    }
}
