//! 查阅记录 — the access log: every time staff or a volunteer are shown a resident's full
//! contact number, who, in which role, when, which orders and why are recorded *before* the
//! number is answered, as a `ContactRead` event in the reader's stream `access-<reader>` —
//! hash-chained and signed like every other fact. Auditors list an order's reads
//! (`GET /api/v1/audit/orders/{id}/contact-reads`); the `contact_reads` read model serves them.

use diandan_store::{AppendRequest, Direction, ExpectedRevision};
use diandan_workflows::Role;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::commands::{new_event, EventMetadata};
use crate::{App, RequestContext, Result};

/// The stream of a reader's reads.
pub fn stream_name(reader_id: &str) -> String {
    format!("access-{reader_id}")
}

/// Why a number was shown: the operation that showed it.
pub mod purpose {
    pub const ORDER: &str = "查看订单";
    pub const LIST: &str = "订单列表";
    pub const QUEUE: &str = "待办队列";
}

/// One read of contact numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AccessEvent {
    ContactRead {
        reader_id: String,
        role: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// The orders whose numbers were shown.
        order_ids: Vec<String>,
        purpose: String,
    },
}

impl App {
    /// Records that the caller is about to be shown the numbers of `order_ids`. Residents
    /// (their own number) and the system itself are not recorded; nothing is, when no number
    /// is shown. Fails — and the number is then not shown — when the record cannot be written.
    pub async fn record_contact_reads(
        &self,
        ctx: &RequestContext,
        order_ids: &[String],
        purpose: &str,
    ) -> Result<()> {
        let role = ctx.role();
        if order_ids.is_empty() || matches!(role, Role::Resident | Role::System) {
            return Ok(());
        }
        let now = self.clock.now();
        let metadata = EventMetadata::new(ctx.command_meta(now));
        let event = AccessEvent::ContactRead {
            reader_id: ctx.claims.sub.clone(),
            role: role.as_str().to_owned(),
            at: now,
            order_ids: order_ids.to_vec(),
            purpose: purpose.to_owned(),
        };
        self.store
            .append(AppendRequest {
                stream: stream_name(&ctx.claims.sub),
                expected: ExpectedRevision::Any,
                // Each showing is its own read, even within one request's retries.
                command_id: uuid::Uuid::new_v4().to_string(),
                events: vec![new_event("ContactRead", &event, &metadata)],
            })
            .await?;
        Ok(())
    }
}

impl App {
    /// An order's reads, newest first, for those who may see the order.
    pub async fn list_contact_reads(
        &self,
        ctx: &RequestContext,
        order_id: &str,
        limit: u32,
        min_position: u64,
    ) -> Result<Vec<diandan_proto::v1::ContactReadEntry>> {
        if order_id.is_empty() {
            return Err(crate::AppError::missing("order_id", "请提供订单编号"));
        }
        let limit = crate::queries::page_size(limit)?;
        let loaded = self.load_order(order_id).await?;
        if loaded.revision.is_none() {
            return Err(crate::AppError::NotFound("订单不存在".into()));
        }
        self.order_access(ctx, &loaded.state).await?;
        // Read your own reads: the caller's latest showing is listed without a position to
        // wait for — the console's order page lists an order's reads right after opening the
        // order, which recorded one.
        let own = self
            .store
            .read_stream(
                &stream_name(&ctx.claims.sub),
                u64::MAX,
                Direction::Backward,
                1,
            )
            .await?
            .first()
            .map_or(0, |e| e.position);
        self.catch_up(min_position.max(own)).await?;
        let order_id = order_id.to_owned();
        self.read
            .query(move |c| {
                crate::projections::access::contact_reads(c, &order_id, limit)
                    .map_err(crate::AppError::from)
            })
            .await
    }
}
