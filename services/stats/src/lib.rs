//! The stats service: station statistics from the `order_facts` projection, for any node —
//! a station, an institute or the centre — over its whole subtree.

use tonic::{Request, Response, Status};

use diandan_proto::v1 as pb;
use diandan_proto::v1::stats_service_server::StatsService;
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
