//! The contact vault: residents' phone numbers, kept out of the event log.
//!
//! Events are forever and copied everywhere (bus, projections, audits); a phone number should
//! be neither (PIPL: minimise, keep it only as long as needed). Events carry the masked number;
//! the full one lives here, in its own file, read only when the order's rules allow
//! ([`views`](crate::views)), and erasable per order without rewriting history.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::{AppError, Result};

/// Where full contact numbers are kept.
#[derive(Clone)]
pub struct ContactVault {
    conn: Arc<Mutex<Connection>>,
}

impl ContactVault {
    pub fn open(path: &Path) -> Result<ContactVault> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| AppError::Storage(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS contacts (
                 order_id TEXT PRIMARY KEY,
                 phone TEXT NOT NULL,
                 stored_at_ms INTEGER NOT NULL
             );",
        )?;
        Ok(ContactVault {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&conn.lock().expect("vault poisoned")))
            .await
            .map_err(|e| AppError::Storage(e.to_string()))?
            .map_err(AppError::from)
    }

    /// Stores a number before the order's first event is appended; a retry overwrites it.
    pub async fn put(&self, order_id: &str, phone: &str) -> Result<()> {
        let (order_id, phone) = (order_id.to_owned(), phone.to_owned());
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        self.with(move |c| {
            c.execute(
                "INSERT INTO contacts (order_id, phone, stored_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(order_id) DO UPDATE SET phone = excluded.phone",
                params![order_id, phone, now],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn get(&self, order_id: &str) -> Result<Option<String>> {
        let order_id = order_id.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT phone FROM contacts WHERE order_id = ?1",
                [order_id],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// Erases an order's number (retention expired, or the resident asked).
    pub async fn erase(&self, order_id: &str) -> Result<bool> {
        let order_id = order_id.to_owned();
        self.with(move |c| c.execute("DELETE FROM contacts WHERE order_id = ?1", [order_id]))
            .await
            .map(|n| n > 0)
    }
}
