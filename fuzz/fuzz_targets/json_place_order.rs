//! An HTTP body for `POST /api/v1/orders`, however malformed: JSON → `PlaceOrderRequest` (the
//! gateway's serde) → `Action::Place` (the orders service's own conversions) → `decide` on a
//! new order under every shipped workflow definition, as a resident, a station head placing
//! for a resident (制单) and a volunteer.
//!
//! Never panics; and what `decide` accepts is stored as JSON and loaded back, so it must
//! deserialize again into the same order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

use diandan_proto::v1 as pb;
use diandan_runtime::views::{location_from, time_from};
use diandan_workflows::order::{decide, evolve, Action, Command, OrderEvent, OrderState, Status};
use diandan_workflows::{Actor, CommandMeta, Definition, Registry, Role};

fn definitions() -> &'static [Definition] {
    static DEFINITIONS: std::sync::OnceLock<Vec<Definition>> = std::sync::OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        let registry = Registry::builtin();
        let names: Vec<String> = registry.names().map(str::to_owned).collect();
        names
            .iter()
            .flat_map(|name| {
                registry
                    .versions(name)
                    .into_iter()
                    .filter_map(|v| registry.get(name, v).cloned())
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<pb::PlaceOrderRequest>(data) else {
        return;
    };
    let (Ok(location), Ok(wanted_time)) = (
        location_from("location", request.location.clone()),
        time_from("wanted_time", &request.wanted_time),
    ) else {
        return;
    };
    let order_id = if request.order_id.is_empty() {
        "6f1c1c3e-8d0e-5b8e-9a57-0d5a3c0f2b11".to_owned()
    } else {
        request.order_id.clone()
    };
    let action = Action::Place {
        order_id,
        station_id: request.station_id.clone(),
        category: request.category.clone(),
        description: request.description.clone(),
        location,
        contact_phone: request.contact_phone.clone(),
        wanted_time,
        on_behalf_of: Some(request.on_behalf_of.clone()).filter(|r| !r.is_empty()),
        required_volunteers: request.required_volunteers,
        workflow: Some(request.workflow.clone()).filter(|w| !w.is_empty()),
    };
    for (definition, role) in definitions()
        .iter()
        .flat_map(|d| [Role::Resident, Role::StationHead, Role::Volunteer].map(|role| (d, role)))
    {
        let command = Command {
            meta: CommandMeta {
                actor: Actor::new("fuzz-user", role),
                at: OffsetDateTime::from_unix_timestamp(1_795_300_000).unwrap(),
                command_id: "fuzz-command".into(),
                correlation_id: "fuzz-command".into(),
                causation_id: None,
            },
            action: action.clone(),
        };
        let Ok(events) = decide(definition, &OrderState::default(), &command) else {
            continue;
        };
        let placed = events.iter().fold(OrderState::default(), evolve);
        assert_eq!(placed.status, Status::Placed);
        // Stored as JSON, loaded back: the same order.
        let stored: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).expect("an accepted event serializes"))
            .collect();
        let loaded: Vec<OrderEvent> = stored
            .iter()
            .map(|json| {
                serde_json::from_slice(json).unwrap_or_else(|e| {
                    panic!(
                        "an accepted event does not load back: {e}: {}",
                        String::from_utf8_lossy(json)
                    )
                })
            })
            .collect();
        let reloaded = loaded.iter().fold(OrderState::default(), evolve);
        assert_eq!(reloaded.status, placed.status);
        assert_eq!(reloaded.order_id, placed.order_id);
        assert_eq!(reloaded.description, placed.description);
        assert_eq!(reloaded.wanted_time, placed.wanted_time);
        assert_eq!(reloaded.contact_phone_masked, placed.contact_phone_masked);
        // An order is placed once.
        assert!(decide(definition, &placed, &command).is_err());
    }
});
