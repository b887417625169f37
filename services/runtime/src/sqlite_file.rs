//! Opening the SQLite files of a data dir (read models, contact vault, outbox), which several
//! processes of one host may open at the same instant (`diandan serve` parts started
//! together): wait for a lock rather than fail, then WAL with full durability.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// Page cache per connection, in KiB when negative (`PRAGMA cache_size`): 16 MB (SQLite's
/// default is 2 MB), so the read models' indexes stay in memory.
pub const CACHE_SIZE: i64 = -16384;

/// How long a statement waits for another process's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens `path` for reading and writing. The busy timeout is set first: switching to WAL and
/// creating tables take locks that a process starting beside this one may hold for a moment.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // FULL: what was acknowledged (a checkpoint, a number, a notification) survives a crash.
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")?;
    conn.execute_batch(&format!("PRAGMA cache_size = {CACHE_SIZE};"))?;
    Ok(conn)
}

/// Runs `init` — opening `path` and creating its tables — while holding `<path>.init.lock`
/// exclusively, so processes starting together set the file up one after another (SQLite
/// refuses, rather than waits, when two connections both upgrade to write a new schema).
pub fn initialize<T>(path: &Path, init: impl FnOnce() -> crate::Result<T>) -> crate::Result<T> {
    let failed = |e: std::io::Error| crate::AppError::Storage(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("{}.init.lock", path.display()))
        .map_err(failed)?;
    lock.lock().map_err(failed)?;
    let result = init();
    drop(lock);
    result
}
