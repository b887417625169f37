//! Arbitrary bytes as every request message of `diandan.v1` (what a gRPC client can send):
//! prost decoding never panics, and whatever decodes re-encodes to a fixed point.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use prost::Message;

use diandan_proto::v1 as pb;

fn check<M: Message + Default + Debug>(bytes: &[u8]) {
    let Ok(message) = M::decode(bytes) else {
        return;
    };
    let encoded = message.encode_to_vec();
    let again = M::decode(encoded.as_slice()).expect("a re-encoded message decodes");
    // Bytes, not values: a NaN coordinate is not equal to itself.
    assert_eq!(
        again.encode_to_vec(),
        encoded,
        "{message:?} does not re-encode to itself"
    );
}

fuzz_target!(|data: &[u8]| {
    check::<pb::DevLoginRequest>(data);
    check::<pb::PlaceOrderRequest>(data);
    check::<pb::CancelOrderRequest>(data);
    check::<pb::GetOrderRequest>(data);
    check::<pb::ListMyOrdersRequest>(data);
    check::<pb::GetOrderHistoryRequest>(data);
    check::<pb::TriageOrderRequest>(data);
    check::<pb::DispatchOrderRequest>(data);
    check::<pb::StationQueueRequest>(data);
    check::<pb::SuggestTeamsRequest>(data);
    check::<pb::DecideExtensionRequest>(data);
    check::<pb::AcceptOrderRequest>(data);
    check::<pb::DeclineOrderRequest>(data);
    check::<pb::CheckInRequest>(data);
    check::<pb::CheckOutRequest>(data);
    check::<pb::CompleteOrderRequest>(data);
    check::<pb::RequestExtensionRequest>(data);
    check::<pb::ReviewOrderRequest>(data);
    check::<pb::CloseOrderRequest>(data);
    check::<pb::StationStatsRequest>(data);
    check::<pb::RegisterOrgNodeRequest>(data);
    check::<pb::RegisterTeamRequest>(data);
    check::<pb::RegisterVolunteerRequest>(data);
    check::<pb::GetOrgTreeRequest>(data);
    check::<pb::ListTeamsRequest>(data);
});
