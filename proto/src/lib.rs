//! The `diandan.v1` API: protobuf messages and tonic services generated from
//! `proto/diandan/v1/*.proto`.
//!
//! The messages double as the HTTP JSON bodies (serde) and OpenAPI schemas (utoipa), so the
//! gRPC and HTTP APIs cannot drift apart.

/// Generated code for package `diandan.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("diandan.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("diandan_descriptor");
}

/// A command's response: its [`CommandAck`](v1::CommandAck), wrapped in the RPC's own
/// response message (buf style: every RPC has its own request and response).
pub trait CommandResponse {
    fn from_ack(ack: v1::CommandAck) -> Self;
    /// The acknowledgement inside (a default one if a peer left it out).
    fn into_ack(self) -> v1::CommandAck;
}

macro_rules! command_responses {
    ($($response:ident),* $(,)?) => {
        $(impl CommandResponse for v1::$response {
            fn from_ack(ack: v1::CommandAck) -> Self {
                v1::$response { ack: Some(ack) }
            }
            fn into_ack(self) -> v1::CommandAck {
                self.ack.unwrap_or_default()
            }
        })*
    };
}

command_responses!(
    PlaceOrderResponse,
    CancelOrderResponse,
    TriageOrderResponse,
    DispatchOrderResponse,
    DecideExtensionResponse,
    AcceptOrderResponse,
    DeclineOrderResponse,
    CheckInResponse,
    CheckOutResponse,
    CompleteOrderResponse,
    RequestExtensionResponse,
    ReviewOrderResponse,
    CloseOrderResponse,
    ClaimOrderResponse,
    UnclaimOrderResponse,
    MergeOrderResponse,
    ReworkOrderResponse,
    FollowUpOrderResponse,
);

/// How a gRPC client reaches its service: a channel to another process (`diandan serve`), or
/// the services of this process called in place (`diandan up`: no socket, no HTTP/2 framing;
/// the request and response are still encoded, as the services expect).
#[derive(Clone)]
pub struct Upstream(
    tower::util::BoxCloneSyncService<
        tonic::codegen::http::Request<tonic::body::Body>,
        tonic::codegen::http::Response<tonic::body::Body>,
        tonic::codegen::StdError,
    >,
);

impl Upstream {
    /// A service of this process, called in place.
    pub fn in_process<S>(service: S) -> Upstream
    where
        S: tower::Service<
                tonic::codegen::http::Request<tonic::body::Body>,
                Response = tonic::codegen::http::Response<tonic::body::Body>,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Error: Into<tonic::codegen::StdError>,
        S::Future: Send + 'static,
    {
        use tower::ServiceExt as _;
        Upstream(tower::util::BoxCloneSyncService::new(
            service.map_err(Into::into),
        ))
    }
}

impl From<tonic::transport::Channel> for Upstream {
    fn from(channel: tonic::transport::Channel) -> Upstream {
        Upstream::in_process(channel)
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upstream")
    }
}

impl tower::Service<tonic::codegen::http::Request<tonic::body::Body>> for Upstream {
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = tonic::codegen::StdError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
        self.0.call(request)
    }
}

/// Where each gRPC service is reached: one channel for all (`diandan up`) or one per service
/// process (`diandan serve`). Identity and the organisation directory are served beside
/// volunteers.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub orders: Upstream,
    pub dispatch: Upstream,
    pub volunteers: Upstream,
    pub reviews: Upstream,
    pub stats: Upstream,
}

impl Upstreams {
    /// Every service behind one channel, or in this process.
    pub fn single(channel: impl Into<Upstream>) -> Upstreams {
        let channel = channel.into();
        Upstreams {
            orders: channel.clone(),
            dispatch: channel.clone(),
            volunteers: channel.clone(),
            reviews: channel.clone(),
            stats: channel,
        }
    }

    pub fn orders(&self) -> v1::order_service_client::OrderServiceClient<Upstream> {
        v1::order_service_client::OrderServiceClient::new(self.orders.clone())
    }
    pub fn dispatch(&self) -> v1::dispatch_service_client::DispatchServiceClient<Upstream> {
        v1::dispatch_service_client::DispatchServiceClient::new(self.dispatch.clone())
    }
    pub fn volunteers(&self) -> v1::volunteer_service_client::VolunteerServiceClient<Upstream> {
        v1::volunteer_service_client::VolunteerServiceClient::new(self.volunteers.clone())
    }
    pub fn reviews(&self) -> v1::review_service_client::ReviewServiceClient<Upstream> {
        v1::review_service_client::ReviewServiceClient::new(self.reviews.clone())
    }
    pub fn stats(&self) -> v1::stats_service_client::StatsServiceClient<Upstream> {
        v1::stats_service_client::StatsServiceClient::new(self.stats.clone())
    }
    pub fn audit(&self) -> v1::audit_service_client::AuditServiceClient<Upstream> {
        v1::audit_service_client::AuditServiceClient::new(self.stats.clone())
    }
    pub fn identity(&self) -> v1::identity_service_client::IdentityServiceClient<Upstream> {
        v1::identity_service_client::IdentityServiceClient::new(self.volunteers.clone())
    }
    pub fn accounts(&self) -> v1::account_service_client::AccountServiceClient<Upstream> {
        v1::account_service_client::AccountServiceClient::new(self.volunteers.clone())
    }
    pub fn organization(
        &self,
    ) -> v1::organization_service_client::OrganizationServiceClient<Upstream> {
        v1::organization_service_client::OrganizationServiceClient::new(self.volunteers.clone())
    }
    /// Hours, points and the love supermarket are served beside volunteers.
    pub fn ledger(&self) -> v1::ledger_service_client::LedgerServiceClient<Upstream> {
        v1::ledger_service_client::LedgerServiceClient::new(self.volunteers.clone())
    }
}
