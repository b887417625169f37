//! The contact vault: residents' phone numbers, kept out of the event log.
//!
//! Events are forever and copied everywhere (bus, projections, audits); a phone number should
//! be neither (PIPL: minimise, keep it only as long as needed). Events carry the masked number;
//! the full one lives here, in its own file, read only when the order's rules allow
//! ([`views`](crate::views)), and erasable per order without rewriting history.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::{AppError, Result};

/// Where full contact numbers are kept.
#[derive(Clone)]
pub struct ContactVault {
    conn: Arc<Mutex<Connection>>,
    /// False once a write failed (a read-only file, a full disk), until a write succeeds again:
    /// while false, placements are refused before they are appended ([`Self::ready`]).
    writable: Arc<AtomicBool>,
}

impl ContactVault {
    /// Opens (creating if need be) the file at `path`; processes starting together set it up
    /// one after another.
    pub fn open(path: &Path) -> Result<ContactVault> {
        crate::sqlite_file::initialize(path, || Self::open_unlocked(path))
    }

    fn open_unlocked(path: &Path) -> Result<ContactVault> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| AppError::Storage(format!("{}: {e}", dir.display())))?;
        }
        let conn = crate::sqlite_file::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS account_phones (
                 account_id TEXT PRIMARY KEY,
                 phone TEXT NOT NULL,
                 stored_at_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS contacts (
                 order_id TEXT PRIMARY KEY,
                 phone TEXT NOT NULL,
                 stored_at_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS volunteer_phones (
                 volunteer_id TEXT PRIMARY KEY,
                 phone TEXT NOT NULL UNIQUE,
                 stored_at_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS write_probe (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 at_ms INTEGER NOT NULL
             );",
        )?;
        let writable = probe(&conn).is_ok();
        if !writable {
            tracing::error!(
                vault = %path.display(),
                "the contact vault cannot be written: placements are refused until it can"
            );
        }
        Ok(ContactVault {
            conn: Arc::new(Mutex::new(conn)),
            writable: Arc::new(AtomicBool::new(writable)),
        })
    }

    /// Whether a new contact number could be kept now. Called before a placement is appended,
    /// so that an unwritable vault refuses the command (503, nothing changed) rather than
    /// accepting an order whose number it cannot keep. Healthy: a flag read; after a failed
    /// write: one small probe write per call, until it succeeds.
    pub async fn ready(&self) -> Result<()> {
        if self.writable.load(Ordering::Acquire) {
            return Ok(());
        }
        self.with(probe).await?;
        self.writable.store(true, Ordering::Release);
        tracing::info!("the contact vault can be written again");
        Ok(())
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        let writable = self.writable.clone();
        tokio::task::spawn_blocking(move || f(&conn.lock().expect("vault poisoned")))
            .await
            .map_err(|e| AppError::Storage(e.to_string()))?
            .inspect_err(|e| {
                if is_write_failure(e) {
                    writable.store(false, Ordering::Release);
                }
            })
            .map_err(AppError::from)
    }

    /// Keeps the number of an order whose placement was just appended (the order is new, so a
    /// row left by an older build's refused placement is replaced).
    pub async fn put(&self, order_id: &str, phone: &str) -> Result<()> {
        let (order_id, phone) = (order_id.to_owned(), phone.to_owned());
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        self.with(move |c| {
            c.execute(
                "INSERT INTO contacts (order_id, phone, stored_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(order_id) DO UPDATE SET phone = excluded.phone,
                     stored_at_ms = excluded.stored_at_ms",
                params![order_id, phone, now],
            )
            .map(|_| ())
        })
        .await
    }

    /// Keeps the number of a placement that was already accepted. Never overwrites: the
    /// first accepted placement owns the row, so a refused or repeated placement of the same
    /// order id cannot change a stored number. Returns whether a row was written.
    pub async fn put_if_absent(&self, order_id: &str, phone: &str) -> Result<bool> {
        let (order_id, phone) = (order_id.to_owned(), phone.to_owned());
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        self.with(move |c| {
            c.execute(
                "INSERT INTO contacts (order_id, phone, stored_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(order_id) DO NOTHING",
                params![order_id, phone, now],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// Keeps the number of a placement that was just accepted (`replace`: a new order's number;
    /// otherwise only where none is stored yet).
    ///
    /// The placement is already durable, so its answer must say so: when the vault cannot be
    /// written now (a full disk), the write is retried in the background — every second, for up
    /// to ten minutes — instead of answering 503 for an order that exists. The failure marks
    /// the vault unwritable, so the next placements are refused by [`Self::ready`] until then.
    pub async fn keep_accepted(&self, order_id: &str, phone: &str, replace: bool) {
        let attempt = move |vault: ContactVault, order_id: String, phone: String| async move {
            if replace {
                vault.put(&order_id, &phone).await
            } else {
                vault.put_if_absent(&order_id, &phone).await.map(|_| ())
            }
        };
        let (order_id, phone) = (order_id.to_owned(), phone.to_owned());
        let Err(e) = attempt(self.clone(), order_id.clone(), phone.clone()).await else {
            return;
        };
        tracing::error!(order = %order_id, error = %e, "contact number not stored yet; retrying");
        let vault = self.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if attempt(vault.clone(), order_id.clone(), phone.clone())
                    .await
                    .is_ok()
                {
                    vault.writable.store(true, Ordering::Release);
                    tracing::info!(order = %order_id, "contact number stored");
                    return;
                }
            }
            tracing::error!(order = %order_id, "contact number could not be stored: lost");
        });
    }

    /// The numbers of several orders (those that have one).
    pub async fn get_many(
        &self,
        order_ids: Vec<String>,
    ) -> Result<std::collections::HashMap<String, String>> {
        if order_ids.is_empty() {
            return Ok(Default::default());
        }
        self.with(move |c| {
            let mut stmt = c.prepare_cached("SELECT phone FROM contacts WHERE order_id = ?1")?;
            let mut found = std::collections::HashMap::new();
            for id in order_ids {
                if let Some(phone) = stmt.query_row([&id], |r| r.get(0)).optional()? {
                    found.insert(id, phone);
                }
            }
            Ok(found)
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

    /// Keeps the number an account bound (after its `PhoneBound` event was appended).
    pub async fn put_account_phone(&self, account_id: &str, phone: &str) -> Result<()> {
        let (account_id, phone) = (account_id.to_owned(), phone.to_owned());
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        self.with(move |c| {
            c.execute(
                "INSERT INTO account_phones (account_id, phone, stored_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(account_id) DO UPDATE SET phone = excluded.phone,
                     stored_at_ms = excluded.stored_at_ms",
                params![account_id, phone, now],
            )
            .map(|_| ())
        })
        .await
    }

    /// The number an account bound, if any.
    pub async fn account_phone(&self, account_id: &str) -> Result<Option<String>> {
        let account_id = account_id.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT phone FROM account_phones WHERE account_id = ?1",
                [account_id],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// Keeps the number a volunteer was registered with (after the registration's append was
    /// accepted). The first registration owns the row: a retry never changes it. Returns
    /// whether a row was written (false: the volunteer or the number is already kept).
    pub async fn put_volunteer_phone(&self, volunteer_id: &str, phone: &str) -> Result<bool> {
        let (volunteer_id, phone) = (volunteer_id.to_owned(), phone.to_owned());
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        self.with(move |c| {
            c.execute(
                "INSERT INTO volunteer_phones (volunteer_id, phone, stored_at_ms)
                 VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![volunteer_id, phone, now],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// The registered volunteer with this number, if any (to link a WeChat account).
    pub async fn volunteer_by_phone(&self, phone: &str) -> Result<Option<String>> {
        let phone = phone.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT volunteer_id FROM volunteer_phones WHERE phone = ?1",
                [phone],
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

/// One small write, to learn whether the vault file can be written at all.
fn probe(c: &Connection) -> rusqlite::Result<()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    c.execute(
        "INSERT INTO write_probe (id, at_ms) VALUES (1, ?1)
         ON CONFLICT(id) DO UPDATE SET at_ms = excluded.at_ms",
        [now],
    )
    .map(|_| ())
}

/// A failure that says the file cannot take writes now (as opposed to, say, a busy lock).
fn is_write_failure(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(ReadOnly | DiskFull | SystemIoFailure | CannotOpen | PermissionDenied)
    )
}
