//! Test databases on SQLite: a copy of a template file migrated once per set, or an in-memory
//! database restored from it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;

use super::{is_leftover, unique_name};
use crate::Composition;

/// The name prefix of per-test files.
const FILE_PREFIX: &str = "preflight_test_";

/// A per-test SQLite database file already at the latest migration of a set: a copy of the
/// set's template file, deleted on drop (also when the test panics).
///
/// The template is migrated once per set (named after its chain hash, in
/// `<temp dir>/preflight-sqlite/`) and reused by later tests, test binaries and runs.
///
/// ```no_run
/// # use preflight_runtime::{Migrations, MigrationSpec};
/// # let migrations = Migrations::from_specs(vec![MigrationSpec::new(1, "t", "CREATE TABLE t (id int);")]).unwrap();
/// use preflight_runtime::testing::SqliteTestDatabase;
///
/// let db = SqliteTestDatabase::new(&migrations);
/// db.connect().execute("INSERT INTO t VALUES (1)", []).unwrap();
///
/// // or, without a file:
/// let conn = SqliteTestDatabase::in_memory(&migrations);
/// ```
pub struct SqliteTestDatabase {
    path: PathBuf,
}

impl SqliteTestDatabase {
    /// A fresh copy of the set's migrated template file.
    ///
    /// # Panics
    /// When the temporary directory is not writable, or a migration fails on a fresh database.
    pub fn new<'m>(migrations: impl Into<Composition<'m>>) -> SqliteTestDatabase {
        let template = template_for(&migrations.into());
        let dir = directory();
        clean_up_leftovers(&dir);
        let path = dir.join(format!("{}.db", unique_name(FILE_PREFIX)));
        std::fs::copy(&template, &path).unwrap_or_else(|e| {
            panic!(
                "cannot copy the template {} to {}: {e}",
                template.display(),
                path.display()
            )
        });
        SqliteTestDatabase { path }
    }

    /// An in-memory database at the latest migration, restored from the set's template file
    /// (SQLite's backup API): nothing to delete afterwards.
    ///
    /// # Panics
    /// As [`SqliteTestDatabase::new`].
    pub fn in_memory<'m>(migrations: impl Into<Composition<'m>>) -> Connection {
        let template = template_for(&migrations.into());
        let mut conn = Connection::open_in_memory()
            .unwrap_or_else(|e| panic!("cannot open an in-memory SQLite database: {e}"));
        conn.restore(
            rusqlite::MAIN_DB,
            &template,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .unwrap_or_else(|e| panic!("cannot restore {}: {e}", template.display()));
        conn
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A `sqlite://` URL of the file (what the CLI and `preflight_runtime::sqlite::connect`
    /// take).
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    /// A new connection to the file.
    ///
    /// # Panics
    /// When the file cannot be opened.
    pub fn connect(&self) -> Connection {
        Connection::open(&self.path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.path.display()))
    }
}

impl Drop for SqliteTestDatabase {
    fn drop(&mut self) {
        for path in companions(&self.path) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The database file and the files SQLite and Preflight keep next to it.
fn companions(path: &Path) -> Vec<PathBuf> {
    let mut all = vec![path.to_path_buf()];
    for suffix in ["-journal", "-wal", "-shm", "-preflight-lock"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        all.push(PathBuf::from(name));
    }
    all
}

/// `<temp dir>/preflight-sqlite`, shared by every test process of the machine's user.
fn directory() -> PathBuf {
    let dir = std::env::temp_dir().join("preflight-sqlite");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The set's migrated template file, built first if it does not exist.
///
/// Many threads and processes may build it at once: each migrates a scratch file of its own
/// and renames it into place, which is atomic, so a reader sees no template or a complete one
/// (and the builders' results are identical).
fn template_for(set: &Composition<'_>) -> PathBuf {
    // Keyed by the history layout, the sets' names and their chains: what the file holds.
    let key = set.fingerprint().to_string();
    let template = directory().join(format!("template_{}.db", &key[..32]));
    if template.exists() {
        return template;
    }
    let scratch = directory().join(format!("{}.building", unique_name("template_")));
    let migrated = Connection::open(&scratch)
        .map_err(|e| e.to_string())
        .and_then(|mut conn| set.run(&mut conn).map_err(|e| e.to_string()));
    // Closed (dropped above) before the rename: the file is complete, with no journal.
    let installed = migrated.and_then(|_| {
        std::fs::rename(&scratch, &template)
            .map_err(|e| format!("cannot rename it to {}: {e}", template.display()))
    });
    for path in companions(&scratch) {
        let _ = std::fs::remove_file(path);
    }
    if let Err(e) = installed {
        panic!(
            "cannot build the SQLite template {}: {e}",
            template.display()
        );
    }
    template
}

/// Deletes test files that a crashed run left behind, once per process.
fn clean_up_leftovers(dir: &Path) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::Relaxed) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_leftover(&name, FILE_PREFIX) || is_leftover(&name, "template_") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MigrationSpec, Migrations};

    fn set() -> Migrations {
        Migrations::from_specs(vec![
            MigrationSpec::new(1, "t", "CREATE TABLE t (id INTEGER PRIMARY KEY)"),
            MigrationSpec::new(2, "row", "INSERT INTO t VALUES (1)"),
        ])
        .unwrap()
    }

    fn rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn copies_are_migrated_isolated_and_deleted() {
        let set = set();
        let paths: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let db = SqliteTestDatabase::new(&set);
                        let conn = db.connect();
                        assert_eq!(rows(&conn), 1);
                        conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
                        assert_eq!(rows(&conn), 2);
                        assert!(db.url().starts_with("sqlite://"));
                        db.path().to_path_buf()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for p in &paths {
            assert!(!p.exists(), "{} was not deleted", p.display());
        }
        // A copy is current: the runner takes the fast path.
        let db = SqliteTestDatabase::new(&set);
        assert!(set.run(&mut db.connect()).unwrap().fast_path);
    }

    #[test]
    fn in_memory_databases_are_restored_from_the_template() {
        let set = set();
        let mut a = SqliteTestDatabase::in_memory(&set);
        let b = SqliteTestDatabase::in_memory(&set);
        a.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert_eq!((rows(&a), rows(&b)), (2, 1));
        assert!(set.run(&mut a).unwrap().fast_path);
    }
}
