//! A gRPC client for the whole API, acting as one signed-in user: used by the demo seeder,
//! the benchmark's load generator and the end-to-end tests.

use std::time::Duration;

use diandan_proto::v1 as pb;
use diandan_proto::CommandResponse as _;
use diandan_proto::Upstreams;
use pb::account_service_calls::AccountServiceCalls;
use pb::dispatch_service_calls::DispatchServiceCalls;
use pb::ledger_service_calls::LedgerServiceCalls;
use pb::order_service_calls::OrderServiceCalls;
use pb::organization_service_calls::OrganizationServiceCalls;
use pb::review_service_calls::ReviewServiceCalls;
use pb::stats_service_calls::StatsServiceCalls;
use pb::volunteer_service_calls::VolunteerServiceCalls;

/// The API as one user sees it.
#[derive(Clone)]
pub struct Client {
    upstreams: Upstreams,
    token: String,
}

impl Client {
    pub fn new(upstreams: Upstreams, token: impl Into<String>) -> Client {
        Client {
            upstreams,
            token: token.into(),
        }
    }

    /// Wraps a message with this user's token (and an idempotency key, if given).
    pub fn request<T>(&self, message: T, idempotency_key: Option<&str>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(Duration::from_secs(30));
        let bearer = format!("Bearer {}", self.token);
        request
            .metadata_mut()
            .insert("authorization", bearer.parse().expect("token is ASCII"));
        if let Some(key) = idempotency_key.and_then(|k| k.parse().ok()) {
            request.metadata_mut().insert("idempotency-key", key);
        }
        request
    }

    pub fn orders(&self) -> OrderServiceCalls {
        self.upstreams.orders()
    }
    pub fn dispatch(&self) -> DispatchServiceCalls {
        self.upstreams.dispatch()
    }
    pub fn volunteers(&self) -> VolunteerServiceCalls {
        self.upstreams.volunteers()
    }
    pub fn accounts(&self) -> AccountServiceCalls {
        self.upstreams.accounts()
    }
    pub fn organization(&self) -> OrganizationServiceCalls {
        self.upstreams.organization()
    }
    pub fn ledger(&self) -> LedgerServiceCalls {
        self.upstreams.ledger()
    }
    pub fn reviews(&self) -> ReviewServiceCalls {
        self.upstreams.reviews()
    }
    pub fn stats(&self) -> StatsServiceCalls {
        self.upstreams.stats()
    }
}

/// Where the order loop stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Placed,
    Triaged,
    Dispatched,
    Accepted,
    InService,
    Served,
    Completed,
    Reviewed,
    Closed,
}

/// The people one order passes through.
#[derive(Clone)]
pub struct Cast {
    pub resident: Client,
    pub head: Client,
    pub volunteer: Client,
    pub team_id: String,
    pub station_id: String,
}

/// One order as it is placed.
#[derive(Debug, Clone)]
pub struct OrderSpec {
    pub category: String,
    pub description: String,
    pub lat: f64,
    pub lng: f64,
    pub address: String,
    pub phone: String,
    pub rating: u32,
    pub comment: String,
}

fn location(spec: &OrderSpec) -> Option<pb::Location> {
    Some(pb::Location {
        lat: spec.lat,
        lng: spec.lng,
        address: spec.address.clone(),
    })
}

/// Drives one order through the loop up to `stage`, the way real users would; returns the
/// order id and the last command's acknowledgement.
pub async fn drive_order(
    cast: &Cast,
    spec: &OrderSpec,
    stage: Stage,
) -> Result<(String, pb::CommandAck), tonic::Status> {
    let place = pb::PlaceOrderRequest {
        station_id: cast.station_id.clone(),
        category: spec.category.clone(),
        description: spec.description.clone(),
        location: location(spec),
        contact_phone: spec.phone.clone(),
        ..Default::default()
    };
    let mut ack = cast
        .resident
        .orders()
        .place_order(cast.resident.request(place, None))
        .await?
        .into_inner()
        .into_ack();
    let id = ack.order_id.clone();
    let steps: [(Stage, &Client); 8] = [
        (Stage::Triaged, &cast.head),
        (Stage::Dispatched, &cast.head),
        (Stage::Accepted, &cast.volunteer),
        (Stage::InService, &cast.volunteer),
        (Stage::Served, &cast.volunteer),
        (Stage::Completed, &cast.volunteer),
        (Stage::Reviewed, &cast.resident),
        (Stage::Closed, &cast.head),
    ];
    for (step, who) in steps {
        if step > stage {
            break;
        }
        let order_id = id.clone();
        ack = match step {
            Stage::Placed => unreachable!("placing is the first step"),
            Stage::Triaged => {
                let m = pb::TriageOrderRequest {
                    order_id,
                    accept: true,
                    ..Default::default()
                };
                who.dispatch()
                    .triage_order(who.request(m, None))
                    .await?
                    .into_inner()
                    .into_ack()
            }
            Stage::Dispatched => {
                let m = pb::DispatchOrderRequest {
                    order_id,
                    team_id: cast.team_id.clone(),
                    ..Default::default()
                };
                who.dispatch()
                    .dispatch_order(who.request(m, None))
                    .await?
                    .into_inner()
                    .into_ack()
            }
            Stage::Accepted => {
                let m = pb::AcceptOrderRequest {
                    order_id,
                    team_id: cast.team_id.clone(),
                    ..Default::default()
                };
                who.volunteers()
                    .accept_order(who.request(m, None))
                    .await?
                    .into_inner()
                    .into_ack()
            }
            Stage::InService => {
                let m = pb::CheckInRequest {
                    order_id,
                    location: location(spec),
                    ..Default::default()
                };
                who.volunteers()
                    .check_in(who.request(m, None))
                    .await?
                    .into_inner()
                    .into_ack()
            }
            Stage::Served => {
                let m = pb::CheckOutRequest {
                    order_id,
                    location: location(spec),
                    ..Default::default()
                };
                who.volunteers()
                    .check_out(who.request(m, None))
                    .await?
                    .into_inner()
                    .into_ack()
            }
            Stage::Completed => {
                let m = pb::CompleteOrderRequest {
                    order_id,
                    note: format!("已完成：{}", spec.description),
                    ..Default::default()
                };
                who.volunteers()
                    .complete_order(who.request(m, None))
                    .await?
                    .into_inner()
                    .into_ack()
            }
            Stage::Reviewed => {
                let m = pb::ReviewOrderRequest {
                    order_id,
                    rating: spec.rating,
                    comment: spec.comment.clone(),
                    ..Default::default()
                };
                who.reviews()
                    .review_order(who.request(m, None))
                    .await?
                    .into_inner()
                    .into_ack()
            }
            Stage::Closed => {
                let m = pb::CloseOrderRequest {
                    order_id,
                    ..Default::default()
                };
                who.reviews()
                    .close_order(who.request(m, None))
                    .await?
                    .into_inner()
                    .into_ack()
            }
        };
    }
    Ok((id, ack))
}
