//! The contact vault: residents' phone numbers, kept out of the event log, and the keys their
//! personal data is sealed with.
//!
//! Events are forever and copied everywhere (bus, projections, audits); a phone number should
//! be neither (PIPL: minimise, keep it only as long as needed). Events carry the masked number
//! (sealed); the full one lives here, in its own file, sealed too, read only when the order's
//! rules allow ([`views`](crate::views)). Each resident's key ([`crate::pii`]) lives here as
//! well: destroying it ([`ContactVault::erase_resident`]) makes every copy of their data
//! unreadable without rewriting history. The file is written with `secure_delete`, and its
//! write-ahead log truncated after an erasure, so a destroyed key leaves no copy on disk.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::pii::{self, ResidentKey};
use crate::{AppError, Result};

/// Where full contact numbers are kept.
#[derive(Clone)]
pub struct ContactVault {
    conn: Arc<Mutex<Connection>>,
    /// False once a write failed (a read-only file, a full disk), until a write succeeds again:
    /// while false, placements are refused before they are appended ([`Self::ready`]).
    writable: Arc<AtomicBool>,
    /// Keys this process sealed with lately, to seal without a round trip to the file. Used
    /// only to *seal* (opening always reads the file, so a key destroyed by another process
    /// opens nothing here): data sealed with a key another process destroyed meanwhile is
    /// unreadable at once, as forgetting wants.
    sealing_keys: Arc<Mutex<std::collections::HashMap<String, ResidentKey>>>,
    /// Retention periods' keys this process sealed check-in places with. Only the current
    /// period's key is ever asked for (`retention::seal_location`), and the retention job
    /// destroys a period's key only once the period ended longer ago than the retention, so a
    /// kept key is never one destroyed (here or by another process); an erasure here drops it.
    retention_keys: Arc<Mutex<std::collections::HashMap<String, ResidentKey>>>,
    /// Numbers waiting to be kept: written together, one transaction (and one sync) for all
    /// that arrive while the previous one commits.
    waiting: Arc<Mutex<Vec<GroupedWrite>>>,
}

/// One write of a group commit.
type VaultWrite = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

/// A write waiting for the next group commit, and where its answer goes.
type GroupedWrite = (
    VaultWrite,
    tokio::sync::oneshot::Sender<std::result::Result<(), String>>,
);

/// Retention keys [`ContactVault::retention_key`] remembers before it starts over (one is
/// current at a time; a few cover a period's turn).
const RETENTION_KEY_CACHE: usize = 16;

/// Keys [`ContactVault::resident_key`] remembers before it starts over.
const SEALING_KEY_CACHE: usize = 65_536;

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
            "PRAGMA secure_delete = ON;
             CREATE TABLE IF NOT EXISTS resident_keys (
                 resident_id TEXT PRIMARY KEY,
                 key BLOB,
                 created_at_ms INTEGER NOT NULL,
                 erased_at_ms INTEGER
             );
             CREATE TABLE IF NOT EXISTS retention_keys (
                 key_id TEXT PRIMARY KEY,
                 key BLOB,
                 period_end_ms INTEGER NOT NULL,
                 erased_at_ms INTEGER
             );
             CREATE TABLE IF NOT EXISTS account_phones (
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
        // Files from before sealing: contacts learn whose number they hold.
        let has_resident: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('contacts') WHERE name = 'resident_id'")?
            .exists([])?;
        if !has_resident {
            conn.execute_batch("ALTER TABLE contacts ADD COLUMN resident_id TEXT")?;
        }
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS contacts_resident ON contacts (resident_id)",
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
            sealing_keys: Arc::default(),
            retention_keys: Arc::default(),
            waiting: Arc::default(),
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

    /// Runs `write` in a transaction shared with the other writes waiting at the time: the
    /// first to arrive while none waits starts a commit on a blocking thread; it takes the
    /// connection, then every write queued by then, and commits them together. Any write
    /// failing to write (a full disk, a read-only file) rolls the whole group back and answers
    /// each of them with its error: nothing of it was kept.
    async fn write_grouped(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<()> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let first = {
            let mut waiting = self
                .waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            waiting.push((Box::new(write), answer));
            waiting.len() == 1
        };
        if first {
            let (conn, waiting, writable) = (
                self.conn.clone(),
                self.waiting.clone(),
                self.writable.clone(),
            );
            tokio::task::spawn_blocking(move || {
                // Whatever happens below, the queue is left empty (each write gets its answer,
                // or an error when its sender is dropped), so the next write starts a commit.
                // A connection poisoned by a panic elsewhere is used on: `commit_group` rolls
                // back any transaction that panic left open.
                let conn = conn
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let group = std::mem::take(
                    &mut *waiting
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                );
                if group.is_empty() {
                    return; // an earlier commit took them
                }
                let (writes, answers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                let outcome = commit_group(&conn, writes);
                if let Err(e) = &outcome {
                    if is_write_failure(e) {
                        writable.store(false, Ordering::Release);
                    }
                }
                let outcome = outcome.map_err(|e| e.to_string());
                for answer in answers {
                    let _ = answer.send(outcome.clone());
                }
            });
        }
        answered
            .await
            .map_err(|_| AppError::Storage("the vault's commit ended without an answer".into()))?
            .map_err(AppError::Storage)
    }

    /// Keeps the number of an order whose placement was just appended (the order is new, so a
    /// row left by an older build's refused placement is replaced), sealed for its resident.
    pub async fn put(&self, order_id: &str, resident: &str, phone: &str) -> Result<()> {
        let (order_id, resident, phone) =
            (order_id.to_owned(), resident.to_owned(), phone.to_owned());
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        self.write_grouped(move |c| {
            // The key the placement was sealed with; none when the resident was forgotten
            // since (the number is then not kept: forgetting sticks).
            let Some(key) = live_key(c, &resident)? else {
                return Ok(());
            };
            let sealed = pii::seal(&key, &resident, pii::field::PHONE, &phone);
            c.prepare_cached(
                "INSERT INTO contacts (order_id, phone, stored_at_ms, resident_id)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(order_id) DO UPDATE SET phone = excluded.phone,
                     stored_at_ms = excluded.stored_at_ms, resident_id = excluded.resident_id",
            )?
            .execute(params![order_id, sealed, now, resident])
            .map(|_| ())
        })
        .await
    }

    /// Keeps the number of a placement that was already accepted. Never overwrites: the
    /// first accepted placement owns the row, so a refused or repeated placement of the same
    /// order id cannot change a stored number. Returns whether a row was written.
    pub async fn put_if_absent(&self, order_id: &str, resident: &str, phone: &str) -> Result<bool> {
        let (order_id, resident, phone) =
            (order_id.to_owned(), resident.to_owned(), phone.to_owned());
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        self.with(move |c| {
            let exists = c
                .prepare_cached("SELECT 1 FROM contacts WHERE order_id = ?1")?
                .exists([&order_id])?;
            if exists {
                return Ok(false);
            }
            let Some(key) = live_key(c, &resident)? else {
                return Ok(false);
            };
            let sealed = pii::seal(&key, &resident, pii::field::PHONE, &phone);
            c.execute(
                "INSERT INTO contacts (order_id, phone, stored_at_ms, resident_id)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT(order_id) DO NOTHING",
                params![order_id, sealed, now, resident],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// The resident's key, created on first use (and anew after they were forgotten: their
    /// new data gets a new key; the old stays unreadable).
    pub async fn resident_key(&self, resident: &str) -> Result<ResidentKey> {
        if let Some(key) = self.cached_key(resident) {
            return Ok(key);
        }
        let owned = resident.to_owned();
        let key = self.with(move |c| key_for(c, &owned)).await?;
        let mut cache = self.sealing_keys.lock().expect("key cache poisoned");
        if cache.len() >= SEALING_KEY_CACHE {
            cache.clear();
        }
        cache.insert(resident.to_owned(), key);
        Ok(key)
    }

    fn cached_key(&self, resident: &str) -> Option<ResidentKey> {
        self.sealing_keys
            .lock()
            .expect("key cache poisoned")
            .get(resident)
            .copied()
    }

    /// The live keys of these residents (a forgotten one has none).
    pub async fn resident_keys(
        &self,
        residents: Vec<String>,
    ) -> Result<std::collections::HashMap<String, ResidentKey>> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT key FROM resident_keys WHERE resident_id = ?1 AND key IS NOT NULL",
            )?;
            let mut found = std::collections::HashMap::new();
            for resident in residents {
                let key: Option<Vec<u8>> = stmt.query_row([&resident], |r| r.get(0)).optional()?;
                if let Some(key) = key.and_then(|k| ResidentKey::try_from(k).ok()) {
                    found.insert(resident, key);
                }
            }
            Ok(found)
        })
        .await
    }

    /// The key of a retention period ([`crate::retention`]), created on first use.
    pub async fn retention_key(&self, key_id: &str, period_end_ms: i64) -> Result<ResidentKey> {
        if let Some(key) = self
            .retention_keys
            .lock()
            .expect("key cache poisoned")
            .get(key_id)
        {
            return Ok(*key);
        }
        let owned = key_id.to_owned();
        let (key, kept) = self
            .with(move |c| {
                let fresh = pii::new_key();
                c.execute(
                    "INSERT INTO retention_keys (key_id, key, period_end_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT(key_id) DO NOTHING",
                    params![owned, &fresh[..], period_end_ms],
                )?;
                let key: Option<Vec<u8>> = c.query_row(
                    "SELECT key FROM retention_keys WHERE key_id = ?1",
                    [&owned],
                    |r| r.get(0),
                )?;
                // A period whose key is already destroyed gets nothing readable: a fresh key
                // is used once and dropped, so the coordinates sealed with it are lost at once.
                Ok(match key.and_then(|k| ResidentKey::try_from(k).ok()) {
                    Some(key) => (key, true),
                    None => (fresh, false),
                })
            })
            .await?;
        if kept {
            let mut cache = self.retention_keys.lock().expect("key cache poisoned");
            if cache.len() >= RETENTION_KEY_CACHE {
                cache.clear();
            }
            cache.insert(key_id.to_owned(), key);
        }
        Ok(key)
    }

    /// A retention period's key, while it is kept.
    pub async fn retention_key_live(&self, key_id: &str) -> Result<Option<ResidentKey>> {
        let key_id = key_id.to_owned();
        self.with(move |c| {
            stored_key(
                c,
                "SELECT key FROM retention_keys WHERE key_id = ?1",
                &key_id,
            )
        })
        .await
    }

    /// Live retention keys whose period ended at or before `ended_by_ms`: (id, period end).
    pub async fn retention_keys_due(&self, ended_by_ms: i64) -> Result<Vec<(String, i64)>> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT key_id, period_end_ms FROM retention_keys
                 WHERE key IS NOT NULL AND period_end_ms <= ?1 ORDER BY period_end_ms",
            )?;
            let rows = stmt.query_map([ended_by_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    /// Destroys a retention period's key (and truncates the write-ahead log).
    pub async fn erase_retention_key(&self, key_id: &str, at_ms: i64) -> Result<()> {
        self.retention_keys
            .lock()
            .expect("key cache poisoned")
            .remove(key_id);
        let key_id = key_id.to_owned();
        self.with(move |c| {
            c.execute(
                "UPDATE retention_keys SET key = NULL, erased_at_ms = ?2 WHERE key_id = ?1",
                params![key_id, at_ms],
            )?;
            truncate_wal(c)
        })
        .await
    }

    /// Whether the vault knows this resident: `None` (never had data here), `Some(None)`
    /// (their key is live), `Some(Some(ms))` (forgotten at `ms`).
    pub async fn resident_state(&self, resident: &str) -> Result<Option<Option<i64>>> {
        let resident = resident.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT erased_at_ms FROM resident_keys WHERE resident_id = ?1",
                [resident],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// Destroys the resident's key and drops the numbers kept for them (their orders' and
    /// their account's), then truncates the write-ahead log so no page still holds them.
    /// Returns whether a live key was destroyed.
    pub async fn erase_resident(&self, resident: &str, at_ms: i64) -> Result<bool> {
        self.sealing_keys
            .lock()
            .expect("key cache poisoned")
            .remove(resident);
        let resident = resident.to_owned();
        self.with(move |c| {
            let erased = c.execute(
                "UPDATE resident_keys SET key = NULL, erased_at_ms = ?2
                 WHERE resident_id = ?1 AND key IS NOT NULL",
                params![resident, at_ms],
            )?;
            c.execute("DELETE FROM contacts WHERE resident_id = ?1", [&resident])?;
            c.execute(
                "DELETE FROM account_phones WHERE account_id = ?1",
                [&resident],
            )?;
            truncate_wal(c)?;
            Ok(erased > 0)
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
    pub async fn keep_accepted(&self, order_id: &str, resident: &str, phone: &str, replace: bool) {
        let resident = resident.to_owned();
        let attempt = move |vault: ContactVault, order_id: String, phone: String| {
            let resident = resident.clone();
            async move {
                if replace {
                    vault.put(&order_id, &resident, &phone).await
                } else {
                    vault
                        .put_if_absent(&order_id, &resident, &phone)
                        .await
                        .map(|_| ())
                }
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
            let mut found = std::collections::HashMap::new();
            for id in order_ids {
                if let Some(phone) = contact(c, &id)? {
                    found.insert(id, phone);
                }
            }
            Ok(found)
        })
        .await
    }

    /// An order's number, opened (none when it was never kept, or its resident forgotten).
    pub async fn get(&self, order_id: &str) -> Result<Option<String>> {
        let order_id = order_id.to_owned();
        self.with(move |c| contact(c, &order_id)).await
    }

    /// Keeps the number an account bound (after its `PhoneBound` event was appended).
    pub async fn put_account_phone(&self, account_id: &str, phone: &str) -> Result<()> {
        let (account_id, phone) = (account_id.to_owned(), phone.to_owned());
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        self.with(move |c| {
            let key = key_for(c, &account_id)?;
            let phone = pii::seal(&key, &account_id, pii::field::PHONE, &phone);
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
            let sealed: Option<String> = c
                .query_row(
                    "SELECT phone FROM account_phones WHERE account_id = ?1",
                    [&account_id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(sealed) = sealed else {
                return Ok(None);
            };
            let key = live_key(c, &account_id)?;
            Ok(pii::open(
                key.as_ref(),
                &account_id,
                pii::field::PHONE,
                &sealed,
            ))
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

/// Copies the write-ahead log into the file and empties it, so the pages that held a destroyed
/// key are gone from disk (`secure_delete` zeroed them in the file). Another process reading
/// the file can hold the log for a moment: retried for up to five seconds, then left to the
/// next checkpoint (logged).
fn truncate_wal(c: &Connection) -> rusqlite::Result<()> {
    for _ in 0..50 {
        let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    tracing::error!(
        "the vault's write-ahead log could not be truncated after an erasure (a reader held it); \
         the next checkpoint will"
    );
    Ok(())
}

/// The resident's live key, creating one when there is none.
fn key_for(c: &Connection, resident: &str) -> rusqlite::Result<ResidentKey> {
    if let Some(key) = live_key(c, resident)? {
        return Ok(key);
    }
    let key = pii::new_key();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    c.execute(
        "INSERT INTO resident_keys (resident_id, key, created_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(resident_id) DO UPDATE SET key = excluded.key,
             created_at_ms = excluded.created_at_ms, erased_at_ms = NULL
         WHERE resident_keys.key IS NULL",
        params![resident, &key[..], now],
    )?;
    // Another writer may have created it first: read what won.
    Ok(live_key(c, resident)?.unwrap_or(key))
}

fn live_key(c: &Connection, resident: &str) -> rusqlite::Result<Option<ResidentKey>> {
    stored_key(
        c,
        "SELECT key FROM resident_keys WHERE resident_id = ?1",
        resident,
    )
}

/// The key `sql` selects for `id`, unless it was destroyed (NULL) or never made.
fn stored_key(c: &Connection, sql: &str, id: &str) -> rusqlite::Result<Option<ResidentKey>> {
    let key: Option<Option<Vec<u8>>> = c
        .prepare_cached(sql)?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(key.flatten().and_then(|k| ResidentKey::try_from(k).ok()))
}

/// An order's number, opened with its resident's key.
fn contact(c: &Connection, order_id: &str) -> rusqlite::Result<Option<String>> {
    let row: Option<(String, Option<String>)> = c
        .prepare_cached("SELECT phone, resident_id FROM contacts WHERE order_id = ?1")?
        .query_row([order_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((phone, resident)) = row else {
        return Ok(None);
    };
    let resident = resident.unwrap_or_default();
    let key = live_key(c, &resident)?;
    Ok(pii::open(
        key.as_ref(),
        &resident,
        pii::field::PHONE,
        &phone,
    ))
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
/// Runs a group of writes in one transaction (see [`ContactVault::write_grouped`]).
fn commit_group(c: &Connection, writes: Vec<VaultWrite>) -> rusqlite::Result<()> {
    if !c.is_autocommit() {
        // Left open by a panic in another use of the connection.
        c.execute_batch("ROLLBACK")?;
    }
    c.execute_batch("BEGIN IMMEDIATE")?;
    let written = writes.into_iter().try_for_each(|write| write(c));
    let committed = written.and_then(|()| c.execute_batch("COMMIT"));
    if committed.is_err() && !c.is_autocommit() {
        // Nothing of the group is kept; the error below is the answer.
        let _ = c.execute_batch("ROLLBACK");
    }
    committed
}

fn is_write_failure(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(ReadOnly | DiskFull | SystemIoFailure | CannotOpen | PermissionDenied)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn numbers_kept_at_once_share_commits_and_each_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let vault = ContactVault::open(&dir.path().join("private.db")).unwrap();
        vault.resident_key("r1").await.unwrap();
        let puts = (0..200).map(|i| {
            let vault = vault.clone();
            tokio::spawn(async move {
                vault
                    .put(&format!("o{i}"), "r1", &format!("138{i:08}"))
                    .await
            })
        });
        for put in futures::future::join_all(puts).await {
            put.unwrap().unwrap();
        }
        for i in [0, 99, 199] {
            assert_eq!(
                vault.get(&format!("o{i}")).await.unwrap().as_deref(),
                Some(format!("138{i:08}").as_str())
            );
        }
        assert!(
            vault.waiting.lock().unwrap().is_empty(),
            "no write left behind"
        );
    }

    #[tokio::test]
    async fn a_retention_key_is_remembered_until_it_is_erased() {
        let dir = tempfile::tempdir().unwrap();
        let vault = ContactVault::open(&dir.path().join("private.db")).unwrap();
        let key = vault.retention_key("locations-0-1000", 1000).await.unwrap();
        assert_eq!(
            vault.retention_key("locations-0-1000", 1000).await.unwrap(),
            key
        );
        assert_eq!(
            vault.retention_key_live("locations-0-1000").await.unwrap(),
            Some(key)
        );
        vault
            .erase_retention_key("locations-0-1000", 5000)
            .await
            .unwrap();
        assert_eq!(
            vault.retention_key_live("locations-0-1000").await.unwrap(),
            None
        );
        // After the erasure, nothing readable: a fresh key each time, never the old one.
        let after = vault.retention_key("locations-0-1000", 1000).await.unwrap();
        assert_ne!(after, key);
        assert_ne!(
            vault.retention_key("locations-0-1000", 1000).await.unwrap(),
            after
        );
    }
}
