//! The stats and audit services: station statistics from the `order_facts` projection, for any node —
//! a station, an institute or the centre — over its whole subtree.

use tonic::{Request, Response, Status};

use diandan_proto::v1 as pb;
use diandan_proto::v1::audit_service_server::AuditService;
use diandan_proto::v1::stats_service_server::StatsService;
use diandan_runtime::audit::{AuditQuery, Cursor, Names, EXPORT_CHUNK};
use diandan_runtime::queries::page_size;
use diandan_runtime::App;
use diandan_workflows::permissions::Operation;

pub struct Stats {
    app: App,
}

impl Stats {
    pub fn new(app: App) -> Stats {
        Stats { app }
    }

    pub fn into_server(self) -> pb::stats_service_server::StatsServiceServer<Stats> {
        pb::stats_service_server::StatsServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl StatsService for Stats {
    async fn station_stats(
        &self,
        request: Request<pb::StationStatsRequest>,
    ) -> Result<Response<pb::StationStatsResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::StationStats)?;
        let report = self.app.stats(&ctx, request.into_inner()).await?;
        Ok(Response::new(report))
    }
}

/// 审计: search and export finished orders.
pub struct Audit {
    app: App,
}

impl Audit {
    pub fn new(app: App) -> Audit {
        Audit { app }
    }

    pub fn into_server(self) -> pb::audit_service_server::AuditServiceServer<Audit> {
        pb::audit_service_server::AuditServiceServer::new(self)
    }
}

/// Where an export has got to.
struct Export {
    app: App,
    query: AuditQuery,
    after: Option<Cursor>,
    names: Names,
    done: bool,
}

impl Export {
    /// The next chunk, or the end: one read at a time, when the client has taken the last.
    async fn next_chunk(mut self) -> Option<(Result<pb::ExportOrdersResponse, Status>, Export)> {
        if self.done {
            return None;
        }
        let page = self
            .app
            .audit_page(self.query.clone(), self.after.take(), EXPORT_CHUNK)
            .await;
        match page {
            Ok((mut orders, next)) => {
                if let Err(e) = self.app.name_rows(&mut self.names, &mut orders).await {
                    self.done = true;
                    return Some((Err(e.into()), self));
                }
                self.done = next.is_none();
                self.after = next;
                if orders.is_empty() {
                    return None;
                }
                Some((Ok(pb::ExportOrdersResponse { orders }), self))
            }
            Err(e) => {
                self.done = true;
                Some((Err(e.into()), self))
            }
        }
    }
}

#[tonic::async_trait]
impl AuditService for Audit {
    async fn search_orders(
        &self,
        request: Request<pb::SearchOrdersRequest>,
    ) -> Result<Response<pb::SearchOrdersResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::SearchOrders)?;
        let req = request.into_inner();
        let limit = page_size(req.limit)?;
        let after = Cursor::parse(&req.after)?;
        let query = self.app.audit_query(&ctx, req.filter).await?;
        self.app.catch_up(req.min_position).await?;
        let (mut orders, next) = self.app.audit_page(query, after, limit).await?;
        self.app
            .name_rows(&mut Names::default(), &mut orders)
            .await?;
        Ok(Response::new(pb::SearchOrdersResponse {
            orders,
            next_after: next.map(|c| c.format()).unwrap_or_default(),
        }))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        self.app
            .authorize(request.metadata(), Operation::GetCheckpoint)?;
        let (checkpoint, public_key) = self.app.checkpoint(request.into_inner().tree_size).await?;
        Ok(Response::new(pb::GetCheckpointResponse {
            checkpoint: Some(signed(checkpoint)),
            public_key,
        }))
    }

    async fn sign_checkpoint(
        &self,
        request: Request<pb::SignCheckpointRequest>,
    ) -> Result<Response<pb::SignCheckpointResponse>, Status> {
        self.app
            .authorize(request.metadata(), Operation::SignCheckpoint)?;
        let checkpoint = self.app.sign_checkpoint().await?;
        Ok(Response::new(pb::SignCheckpointResponse {
            checkpoint: Some(signed(checkpoint)),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        self.app
            .authorize(request.metadata(), Operation::GetConsistencyProof)?;
        let req = request.into_inner();
        let (hashes, checkpoint) = self
            .app
            .consistency_proof(req.from_size, req.to_size)
            .await?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            hashes,
            checkpoint: Some(signed(checkpoint)),
        }))
    }

    async fn export_order_proof(
        &self,
        request: Request<pb::ExportOrderProofRequest>,
    ) -> Result<Response<pb::ExportOrderProofResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ExportOrderProof)?;
        let document = self
            .app
            .export_order_proof(&ctx, &request.into_inner().order_id)
            .await?;
        Ok(Response::new(pb::ExportOrderProofResponse { document }))
    }

    async fn list_contact_reads(
        &self,
        request: Request<pb::ListContactReadsRequest>,
    ) -> Result<Response<pb::ListContactReadsResponse>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ListContactReads)?;
        let req = request.into_inner();
        let reads = self
            .app
            .list_contact_reads(&ctx, &req.order_id, req.limit, req.min_position)
            .await?;
        Ok(Response::new(pb::ListContactReadsResponse { reads }))
    }

    type ExportOrdersStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::ExportOrdersResponse, Status>> + Send>,
    >;

    async fn export_orders(
        &self,
        request: Request<pb::ExportOrdersRequest>,
    ) -> Result<Response<Self::ExportOrdersStream>, Status> {
        let ctx = self
            .app
            .authorize(request.metadata(), Operation::ExportOrders)?;
        let query = self
            .app
            .audit_query(&ctx, request.into_inner().filter)
            .await?;
        let export = Export {
            app: self.app.clone(),
            query,
            after: None,
            names: Names::default(),
            done: false,
        };
        Ok(Response::new(Box::pin(futures::stream::unfold(
            export,
            Export::next_chunk,
        ))))
    }
}

/// A checkpoint on the wire (the same fields, in the same order, as its JSON form).
fn signed(c: diandan_audit::Checkpoint) -> pb::SignedCheckpoint {
    pb::SignedCheckpoint {
        version: c.version,
        log_id: c.log_id,
        tree_size: c.tree_size,
        position: c.position,
        root: c.root,
        signed_at_ms: c.signed_at_ms,
        signature: c.signature,
    }
}
