//! The migration lock on SQLite: `BEGIN IMMEDIATE` held by a second connection on the
//! sidecar file `<database>-preflight-lock` (see the module docs of `sqlite`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use crate::backend::Locking;
use crate::error::Error;
use crate::lock::Holder;

use super::{db_error, is_busy, SqliteBackend};

/// The sidecar lock file of a database file: `<path>-preflight-lock`.
pub(crate) fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-preflight-lock");
    PathBuf::from(name)
}

impl Locking for SqliteBackend<'_> {
    async fn try_advisory_lock(&mut self, _key: i64) -> Result<bool, Error> {
        let Some(file) = self.database_file()? else {
            return Ok(true); // in memory: no other connection can reach it
        };
        let path = lock_path(&file);
        let lock = match self.lock.take() {
            Some(lock) => lock,
            None => {
                let lock = Connection::open(&path).map_err(|e| {
                    Error::db(
                        format!("opening the lock file {}", path.display()),
                        db_error(&e),
                    )
                })?;
                // Zero: a try-lock, polled by the runner with back-off and its timeout.
                lock.busy_timeout(Duration::ZERO)
                    .map_err(|e| Error::db("setting the lock file's busy timeout", db_error(&e)))?;
                lock
            }
        };
        match lock.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                self.lock = Some(lock);
                Ok(true)
            }
            Err(e) if is_busy(&e) => {
                self.lock = Some(lock);
                Ok(false)
            }
            Err(e) => Err(Error::db(
                format!("locking {}", path.display()),
                db_error(&e),
            )),
        }
    }

    async fn advisory_unlock(&mut self, _key: i64) -> Result<(), Error> {
        if let Some(lock) = self.lock.take() {
            // Closing the connection releases the file lock whatever ROLLBACK says.
            if let Err(e) = lock.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "releasing the lock file");
            }
        }
        Ok(())
    }

    async fn advisory_holder(&mut self, _key: i64) -> Result<Option<Holder>, Error> {
        Ok(self
            .database_file()?
            .map(|file| lock_holder(&lock_path(&file))))
    }

    async fn try_lease(
        &mut self,
        _owner: &str,
        _ttl: Duration,
    ) -> Result<Result<(), Option<Holder>>, Error> {
        Err(Error::Config(
            "the lease lock strategy is for PgBouncer and CockroachDB; on SQLite use \
             LockStrategy::Advisory (a lock file next to the database)"
                .into(),
        ))
    }

    async fn renew_lease(&mut self, _owner: &str, _ttl: Duration) -> Result<bool, Error> {
        Ok(false)
    }

    async fn release_lease(&mut self, _owner: &str) -> Result<(), Error> {
        Ok(())
    }
}

/// Who holds the lock file: on Linux, the process whose POSIX lock on it `/proc/locks` lists.
fn lock_holder(path: &Path) -> Holder {
    Holder::LockFile {
        path: path.display().to_string(),
        pid: lock_holder_pid(path),
    }
}

#[cfg(target_os = "linux")]
fn lock_holder_pid(path: &Path) -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(path).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let own = i32::try_from(std::process::id()).ok()?;
    // `1: POSIX  ADVISORY  WRITE 12345 08:01:1234567 1073741825 1073741825`
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let pid: i32 = fields.get(4)?.parse().ok()?;
        let ino: u64 = fields.get(5)?.rsplit(':').next()?.parse().ok()?;
        (fields.get(1) == Some(&"POSIX") && ino == inode && pid != own).then_some(pid)
    })
}

#[cfg(not(target_os = "linux"))]
fn lock_holder_pid(_path: &Path) -> Option<i32> {
    None
}
