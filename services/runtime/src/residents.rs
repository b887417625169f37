//! 居民 — forgetting a resident (PIPL's right to erasure) by destroying their key.
//!
//! The fact is recorded first — `ResidentForgotten` in the stream `resident-<id>`, hash-chained
//! like every event, with who asked and why — then the key is destroyed and the numbers kept
//! for them are dropped ([`crate::vault::ContactVault::erase_resident`]). A crash in between
//! leaves the key live, so asking again finishes the job; once the key is gone, asking again
//! is refused and changes nothing.

use diandan_store::{AppendRequest, ExpectedRevision};
use serde::Serialize;
use time::OffsetDateTime;

use crate::commands::{new_event, EventMetadata};
use crate::{App, AppError, RequestContext, Result};

/// The stream of a resident's own facts.
pub fn stream_name(resident_id: &str) -> String {
    format!("resident-{resident_id}")
}

/// The event of a forgetting.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
enum ResidentChange<'a> {
    ResidentForgotten {
        resident_id: &'a str,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        reason: &'a str,
    },
}

impl App {
    /// The forgetting this very command (its command id) recorded, if any.
    async fn recorded_forgetting(
        &self,
        ctx: &RequestContext,
        resident_id: &str,
    ) -> Result<Option<(OffsetDateTime, u64)>> {
        let recorded = self
            .store
            .read_stream(
                &stream_name(resident_id),
                0,
                diandan_store::Direction::Forward,
                1000,
            )
            .await?;
        for event in recorded {
            let meta = EventMetadata::decode(&event)?;
            if meta.command.command_id == ctx.command_id {
                return Ok(Some((meta.command.at, event.position)));
            }
        }
        Ok(None)
    }

    /// Forgets a resident; answers when and at which log position it was recorded.
    pub async fn forget_resident(
        &self,
        ctx: &RequestContext,
        resident_id: &str,
        reason: &str,
    ) -> Result<(OffsetDateTime, u64)> {
        diandan_workflows::validate::id("resident_id", resident_id)?;
        diandan_workflows::validate::text("reason", reason, 0, 200)?;
        match self.vault.resident_state(resident_id).await? {
            None => {
                return Err(AppError::NotFound(format!(
                    "没有居民「{resident_id}」的个人信息"
                )))
            }
            Some(Some(at_ms)) => {
                // A retry of the forgetting that succeeded answers as it did.
                if let Some(original) = self.recorded_forgetting(ctx, resident_id).await? {
                    return Ok(original);
                }
                let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
                    .map(|t| crate::views::rfc3339(Some(t)))
                    .unwrap_or_default();
                return Err(AppError::Conflict {
                    field: Some("resident_id"),
                    message: format!("居民「{resident_id}」的个人信息已于 {at} 删除"),
                });
            }
            Some(None) => {}
        }
        let now = self.clock.now();
        let metadata = EventMetadata::new(ctx.command_meta(now));
        let change = ResidentChange::ResidentForgotten {
            resident_id,
            at: now,
            reason,
        };
        let appended = self
            .store
            .append(AppendRequest {
                stream: stream_name(resident_id),
                expected: ExpectedRevision::Any,
                command_id: ctx.command_id.clone(),
                events: vec![new_event("ResidentForgotten", &change, &metadata)],
            })
            .await?;
        let at_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        self.vault.erase_resident(resident_id, at_ms).await?;
        tracing::info!(resident = %resident_id, position = appended.last_position, "resident forgotten");
        Ok((now, appended.last_position))
    }
}
