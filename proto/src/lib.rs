//! The `diandan.v1` API: protobuf messages and tonic services generated from
//! `proto/diandan/v1/*.proto`.
//!
//! The messages double as the HTTP JSON bodies (serde) and OpenAPI schemas (utoipa), so the
//! gRPC and HTTP APIs cannot drift apart.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Generated code for package `diandan.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("diandan.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("diandan_descriptor");
}

/// The largest answer a client of these services takes (tonic's default is 4 MB): the
/// unpaged lists of a city's directory can pass that, and an answer called in place (`diandan
/// up`) has no limit — `diandan serve`'s parts answer the same.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

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
/// the services of this process as a tower service (no socket, no HTTP/2 framing; the request
/// and response are still encoded). What `diandan up` calls in place without encoding is
/// [`InPlaceServices`]; streams still come this way.
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
/// volunteers. With [`in_place`](Upstreams::in_place) set, unary calls reach this process's
/// handlers directly and only streams use the upstreams.
#[derive(Clone)]
pub struct Upstreams {
    pub orders: Upstream,
    pub dispatch: Upstream,
    pub volunteers: Upstream,
    pub reviews: Upstream,
    pub stats: Upstream,
    pub in_place: Option<InPlaceServices>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("in_place", &self.in_place.is_some())
            .finish_non_exhaustive()
    }
}

/// Each service: the upstream serving it, and its generated `*Calls` type (see
/// `proto/build.rs`). From this one table come [`InPlaceServices`]' fields and the accessors
/// of [`Upstreams`].
macro_rules! services {
    ($($(#[$doc:meta])* $name:ident: $module:ident::{$unary:ident, $calls:ident} via $upstream:ident;)*) => {
        /// The services of this process, for calls made in place, and what every such call
        /// goes through (the server's span, deadline, panic and metrics handling).
        #[derive(Clone)]
        pub struct InPlaceServices {
            $(pub $name: Arc<dyn v1::$module::$unary>,)*
            pub guard: Arc<dyn InPlaceGuard>,
        }

        impl Upstreams {
            $($(#[$doc])*
            pub fn $name(&self) -> v1::$module::$calls {
                v1::$module::$calls::new(self.$upstream.clone(), self.local(|s| &s.$name))
            })*
        }
    };
}

services! {
    orders: order_service_calls::{OrderServiceUnary, OrderServiceCalls} via orders;
    dispatch: dispatch_service_calls::{DispatchServiceUnary, DispatchServiceCalls} via dispatch;
    volunteers: volunteer_service_calls::{VolunteerServiceUnary, VolunteerServiceCalls} via volunteers;
    reviews: review_service_calls::{ReviewServiceUnary, ReviewServiceCalls} via reviews;
    stats: stats_service_calls::{StatsServiceUnary, StatsServiceCalls} via stats;
    /// The audit trail is served beside statistics.
    audit: audit_service_calls::{AuditServiceUnary, AuditServiceCalls} via stats;
    /// Sign-in is served beside volunteers.
    identity: identity_service_calls::{IdentityServiceUnary, IdentityServiceCalls} via volunteers;
    accounts: account_service_calls::{AccountServiceUnary, AccountServiceCalls} via volunteers;
    /// The organisation directory is served beside volunteers.
    organization: organization_service_calls::{OrganizationServiceUnary, OrganizationServiceCalls} via volunteers;
    /// Hours, points and the love supermarket are served beside volunteers.
    ledger: ledger_service_calls::{LedgerServiceUnary, LedgerServiceCalls} via volunteers;
}

/// A call made in place, its response type erased for [`InPlaceGuard`].
pub type InPlaceFuture = Pin<
    Box<dyn Future<Output = Result<tonic::Response<Box<dyn Any + Send>>, tonic::Status>> + Send>,
>;

/// What a server does around each call that reaches it over the network — its span, its
/// `grpc-timeout`, a panicking handler answered `INTERNAL`, its metrics — done around a call
/// made in place, which no transport sees.
pub trait InPlaceGuard: Send + Sync + 'static {
    /// Wraps `call` to the method at `path` (`/diandan.v1.OrderService/PlaceOrder`), whose
    /// request carried `metadata` (a copy: the call has the request).
    fn guard(
        &self,
        path: &'static str,
        metadata: tonic::metadata::MetadataMap,
        call: InPlaceFuture,
    ) -> InPlaceFuture;
}

/// One service of this process, called in place (see the generated `*Calls` types).
pub struct InPlace<S: ?Sized> {
    service: Arc<S>,
    guard: Arc<dyn InPlaceGuard>,
}

impl<S: ?Sized> Clone for InPlace<S> {
    fn clone(&self) -> Self {
        InPlace {
            service: self.service.clone(),
            guard: self.guard.clone(),
        }
    }
}

impl<S: ?Sized + Send + Sync + 'static> InPlace<S> {
    pub fn new(service: Arc<S>, guard: Arc<dyn InPlaceGuard>) -> InPlace<S> {
        InPlace { service, guard }
    }

    /// Calls the handler `call` names with `request` as it is — neither encoded nor decoded —
    /// within the guard.
    pub async fn call<Req, Resp, F, Fut>(
        &self,
        path: &'static str,
        request: tonic::Request<Req>,
        call: F,
    ) -> Result<tonic::Response<Resp>, tonic::Status>
    where
        F: FnOnce(Arc<S>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>> + Send + 'static,
        Resp: Send + 'static,
    {
        let metadata = request.metadata().clone();
        let answer = call(self.service.clone(), request);
        let erased: InPlaceFuture = Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|message| Box::new(message) as Box<dyn Any + Send>))
        });
        let (metadata, message, extensions) =
            self.guard.guard(path, metadata, erased).await?.into_parts();
        // A guard answers with the call's own response or an error of its own.
        let message = message
            .downcast::<Resp>()
            .map_err(|_| tonic::Status::internal("服务内部错误"))?;
        Ok(tonic::Response::from_parts(metadata, *message, extensions))
    }
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
            in_place: None,
        }
    }

    /// These upstreams, with unary calls made in place to `services`.
    pub fn in_place(self, services: InPlaceServices) -> Upstreams {
        Upstreams {
            in_place: Some(services),
            ..self
        }
    }

    fn local<S: ?Sized + Send + Sync + 'static>(
        &self,
        service: impl FnOnce(&InPlaceServices) -> &Arc<S>,
    ) -> Option<InPlace<S>> {
        self.in_place
            .as_ref()
            .map(|all| InPlace::new(service(all).clone(), all.guard.clone()))
    }
}
