//! 查阅记录 as a read model: one row per order whose contact number a reader was shown, from
//! the `access-<reader>` streams ([`crate::access`]).

use rusqlite::{params, Transaction};

use super::{Applied, Projection};
use crate::access::AccessEvent;
use crate::{AppError, Result};

pub struct AccessProjection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS contact_reads (
    position INTEGER NOT NULL,
    order_id TEXT NOT NULL,
    reader_id TEXT NOT NULL,
    role TEXT NOT NULL,
    at TEXT NOT NULL,
    purpose TEXT NOT NULL,
    PRIMARY KEY (order_id, position)
) WITHOUT ROWID;
";

impl Projection for AccessProjection {
    fn name(&self) -> &'static str {
        "access"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["contact_reads"]
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Applied<'_>) -> Result<()> {
        if !event.stream.starts_with("access-") || event.event_type != "ContactRead" {
            return Ok(());
        }
        let AccessEvent::ContactRead {
            reader_id,
            role,
            at,
            order_ids,
            purpose,
        } = serde_json::from_slice(&event.data).map_err(|e| {
            AppError::Storage(format!("{} at {}: {e}", event.stream, event.position))
        })?;
        let at = crate::views::rfc3339(Some(at));
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO contact_reads (position, order_id, reader_id, role, at, purpose)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for order_id in order_ids {
            insert.execute(params![
                event.position,
                order_id,
                reader_id,
                role,
                at,
                purpose
            ])?;
        }
        Ok(())
    }
}

/// An order's reads by reader, role and purpose, most recent first.
pub fn contact_reads(
    conn: &rusqlite::Connection,
    order_id: &str,
    limit: u32,
) -> rusqlite::Result<Vec<diandan_proto::v1::ContactReadEntry>> {
    let mut statement = conn.prepare_cached(
        "SELECT MAX(position), reader_id, role, MAX(at), purpose, COUNT(*), MIN(at)
         FROM contact_reads WHERE order_id = ?1
         GROUP BY reader_id, role, purpose ORDER BY MAX(position) DESC LIMIT ?2",
    )?;
    let rows = statement.query_map(params![order_id, limit], |r| {
        Ok(diandan_proto::v1::ContactReadEntry {
            position: r.get(0)?,
            reader_id: r.get(1)?,
            role: r.get(2)?,
            at: r.get(3)?,
            purpose: r.get(4)?,
            count: r.get(5)?,
            first_at: r.get(6)?,
        })
    })?;
    rows.collect()
}
