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

/// Where each gRPC service is reached: one channel for all (`diandan up`) or one per service
/// process (`diandan serve`). Identity and the organisation directory are served beside
/// volunteers.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub orders: tonic::transport::Channel,
    pub dispatch: tonic::transport::Channel,
    pub volunteers: tonic::transport::Channel,
    pub reviews: tonic::transport::Channel,
    pub stats: tonic::transport::Channel,
}

impl Upstreams {
    /// Every service behind one channel.
    pub fn single(channel: tonic::transport::Channel) -> Upstreams {
        Upstreams {
            orders: channel.clone(),
            dispatch: channel.clone(),
            volunteers: channel.clone(),
            reviews: channel.clone(),
            stats: channel,
        }
    }

    pub fn orders(
        &self,
    ) -> v1::order_service_client::OrderServiceClient<tonic::transport::Channel> {
        v1::order_service_client::OrderServiceClient::new(self.orders.clone())
    }
    pub fn dispatch(
        &self,
    ) -> v1::dispatch_service_client::DispatchServiceClient<tonic::transport::Channel> {
        v1::dispatch_service_client::DispatchServiceClient::new(self.dispatch.clone())
    }
    pub fn volunteers(
        &self,
    ) -> v1::volunteer_service_client::VolunteerServiceClient<tonic::transport::Channel> {
        v1::volunteer_service_client::VolunteerServiceClient::new(self.volunteers.clone())
    }
    pub fn reviews(
        &self,
    ) -> v1::review_service_client::ReviewServiceClient<tonic::transport::Channel> {
        v1::review_service_client::ReviewServiceClient::new(self.reviews.clone())
    }
    pub fn stats(&self) -> v1::stats_service_client::StatsServiceClient<tonic::transport::Channel> {
        v1::stats_service_client::StatsServiceClient::new(self.stats.clone())
    }
    pub fn audit(&self) -> v1::audit_service_client::AuditServiceClient<tonic::transport::Channel> {
        v1::audit_service_client::AuditServiceClient::new(self.stats.clone())
    }
    pub fn identity(
        &self,
    ) -> v1::identity_service_client::IdentityServiceClient<tonic::transport::Channel> {
        v1::identity_service_client::IdentityServiceClient::new(self.volunteers.clone())
    }
    pub fn accounts(
        &self,
    ) -> v1::account_service_client::AccountServiceClient<tonic::transport::Channel> {
        v1::account_service_client::AccountServiceClient::new(self.volunteers.clone())
    }
    pub fn organization(
        &self,
    ) -> v1::organization_service_client::OrganizationServiceClient<tonic::transport::Channel> {
        v1::organization_service_client::OrganizationServiceClient::new(self.volunteers.clone())
    }
    /// Hours, points and the love supermarket are served beside volunteers.
    pub fn ledger(
        &self,
    ) -> v1::ledger_service_client::LedgerServiceClient<tonic::transport::Channel> {
        v1::ledger_service_client::LedgerServiceClient::new(self.volunteers.clone())
    }
}
