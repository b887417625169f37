//! 审计链 — the audit trail: signed checkpoints of the log, consistency proofs between them,
//! and an order's verifiable export. The cryptography is `diandan_audit`'s; this module
//! decides who gets what, and answers in the API's terms.

use diandan_audit::checkpoint::encode_public_key;
use diandan_audit::export::{Export, ExportedEvent, EXPORT_FORMAT};
use diandan_audit::Checkpoint;
use diandan_store::chain::to_hex;
use diandan_store::Direction;
use diandan_workflows::order;

use crate::{App, AppError, RequestContext, Result};

/// Most events one exported history holds (an order has tens).
const MAX_EXPORT_EVENTS: usize = 10_000;

fn storage(e: anyhow::Error) -> AppError {
    AppError::Storage(format!("audit trail: {e:#}"))
}

impl App {
    fn now_ms(&self) -> i64 {
        (self.clock.now().unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// The newest checkpoint (`tree_size` 0) or the one of exactly `tree_size` events, and the
    /// public key it verifies with.
    pub async fn checkpoint(&self, tree_size: u64) -> Result<(Checkpoint, String)> {
        let found = if tree_size == 0 {
            self.witness.latest().map_err(storage)?
        } else {
            self.witness.checkpoint_of(tree_size).map_err(storage)?
        };
        let checkpoint = found.ok_or_else(|| {
            AppError::NotFound(if tree_size == 0 {
                "尚未签署检查点".into()
            } else {
                format!("没有覆盖 {tree_size} 个事件的检查点")
            })
        })?;
        Ok((checkpoint, encode_public_key(&self.witness.public_key())))
    }

    /// Signs a checkpoint of the whole log now (or answers the newest, when it covers it).
    pub async fn sign_checkpoint(&self) -> Result<Checkpoint> {
        self.witness
            .checkpoint(self.store.as_ref(), self.now_ms())
            .await
            .map_err(storage)?
            .ok_or_else(|| AppError::NotFound("日志为空，没有可签署的内容".into()))
    }

    /// The proof that the log of `from_size` events is a prefix of the log the checkpoint of
    /// `to_size` events (0: the newest) signed.
    pub async fn consistency_proof(
        &self,
        from_size: u64,
        to_size: u64,
    ) -> Result<(Vec<String>, Checkpoint)> {
        if from_size == 0 {
            return Err(AppError::invalid(
                "from_size",
                "须为正整数：您所持检查点的事件数",
            ));
        }
        let (to, _) = self.checkpoint(to_size).await?;
        if from_size > to.tree_size {
            // Not a malformed request: a held checkpoint larger than the newest one says the
            // log is shorter than it was — for the auditor to take up.
            return Err(AppError::Conflict {
                field: Some("from_size"),
                message: format!(
                    "您所持检查点覆盖 {from_size} 个事件，多于本系统最新检查点的 {} 个：日志可能被截短",
                    to.tree_size
                ),
            });
        }
        let proof = self
            .witness
            .consistency_proof(from_size, to.tree_size)
            .map_err(storage)?
            .ok_or_else(|| {
                AppError::Storage("audit trail: the witness is behind its checkpoint".into())
            })?;
        Ok((proof.iter().map(to_hex).collect(), to))
    }

    /// An order's whole history with its proofs to a checkpoint that covers it (signed now if
    /// none does yet), as the JSON document `diandan audit verify-export` checks.
    pub async fn export_order_proof(&self, ctx: &RequestContext, order_id: &str) -> Result<String> {
        if order_id.is_empty() {
            return Err(AppError::missing("order_id", "请提供订单编号"));
        }
        let loaded = self.load_order(order_id).await?;
        if loaded.revision.is_none() {
            return Err(AppError::NotFound("订单不存在".into()));
        }
        self.order_access(ctx, &loaded.state).await?;
        let stream = order::stream_name(order_id);
        let events = self
            .store
            .read_stream(&stream, 0, Direction::Forward, MAX_EXPORT_EVENTS + 1)
            .await?;
        if events.len() > MAX_EXPORT_EVENTS {
            // Never a silently shortened history.
            return Err(AppError::Conflict {
                field: Some("order_id"),
                message: format!("该订单的记录超过 {MAX_EXPORT_EVENTS} 条，无法导出为一个文件"),
            });
        }
        let Some(last_event) = events.last() else {
            return Err(AppError::NotFound("订单不存在".into()));
        };
        let last = last_event.position;
        let checkpoint = match self.witness.latest().map_err(storage)? {
            Some(latest) if latest.position >= last => latest,
            _ => self.sign_checkpoint().await?,
        };
        let mut exported = Vec::with_capacity(events.len());
        for event in &events {
            let (leaf, proof) = self
                .witness
                .inclusion(event.position, checkpoint.tree_size)
                .map_err(storage)?
                .ok_or_else(|| {
                    AppError::Storage(format!(
                        "audit trail: position {} is not witnessed",
                        event.position
                    ))
                })?;
            exported.push(ExportedEvent::new(event, leaf, &proof));
        }
        let head = self
            .witness
            .sign_head(&stream, last_event, checkpoint.tree_size);
        let export = Export {
            format: EXPORT_FORMAT.into(),
            stream,
            exported_at_ms: self.now_ms(),
            checkpoint,
            head,
            events: exported,
        };
        serde_json::to_string_pretty(&export).map_err(|e| AppError::Storage(e.to_string()))
    }
}
