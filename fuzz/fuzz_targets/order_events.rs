//! Arbitrary JSON as stored order events (one, or a stream of them): deserializing and folding
//! them with `evolve` from a new order never panics, and neither does deciding any command,
//! under every shipped workflow definition, against whatever state that leaves.

#![no_main]

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

use diandan_workflows::order::{
    decide, evolve, Action, Assignee, Command, OrderEvent, OrderState, TeamKind,
};
use diandan_workflows::validate::Location;
use diandan_workflows::{Actor, CommandMeta, Definition, OrgLevel, Registry, Role};

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

fn commands() -> Vec<Action> {
    let location = Location {
        lat: 29.8711,
        lng: 114.2840,
        address: "永福巷 12 号".into(),
    };
    vec![
        Action::Triage {
            accept: true,
            reason: String::new(),
        },
        Action::Triage {
            accept: false,
            reason: "不在服务范围".into(),
        },
        Action::Dispatch {
            assignee: Assignee {
                team_id: "zhidui-chezhanlu".into(),
                kind: TeamKind::Team,
                node_id: "chezhanlu".into(),
                level: OrgLevel::Station,
            },
            reason: String::new(),
        },
        Action::Accept {
            team_id: "zhidui-chezhanlu".into(),
            member: None,
        },
        Action::Decline {
            team_id: "zhidui-chezhanlu".into(),
            reason: "时间冲突".into(),
        },
        Action::CheckIn {
            location: location.clone(),
        },
        Action::CheckOut { location },
        Action::Complete {
            note: "已办结".into(),
            photos: vec!["evidence/1.jpg".into()],
        },
        Action::Review {
            rating: 5,
            comment: String::new(),
        },
        Action::Close,
        Action::Claim {
            team_id: "zhidui-chezhanlu".into(),
        },
        Action::Unclaim {
            reason: String::new(),
        },
        Action::Rework {
            assignee: Assignee {
                team_id: "audit-bureau".into(),
                kind: TeamKind::HelperUnit,
                node_id: "xianan".into(),
                level: OrgLevel::Centre,
            },
            reason: "积水仍在".into(),
        },
        Action::FollowUp {
            note: "已回访".into(),
        },
        Action::Merge {
            into: "order-earlier".into(),
            reason: String::new(),
        },
        Action::AbsorbDuplicate {
            order_id: "order-later".into(),
            requester_ids: vec!["r2".into()],
        },
        Action::Cancel {
            reason: String::new(),
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let events: Vec<OrderEvent> = match serde_json::from_slice::<Vec<OrderEvent>>(data) {
        Ok(events) => events,
        Err(_) => match serde_json::from_slice::<OrderEvent>(data) {
            Ok(event) => vec![event],
            Err(_) => return,
        },
    };
    let state = events.iter().fold(OrderState::default(), evolve);
    // Whoever the state names as requester or volunteer acts, and strangers too.
    let mut actors = vec![
        Actor::new(state.requester_id.clone(), Role::Resident),
        Actor::new("head-fuzz", Role::StationHead),
        Actor::new("stranger", Role::Volunteer),
    ];
    if let Some((volunteer, _)) = &state.accepted_by {
        actors.push(Actor::new(volunteer.clone(), Role::Volunteer));
    }
    for at in [
        OffsetDateTime::from_unix_timestamp(1_795_300_000).unwrap(),
        state.updated_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
    ] {
        for (definition, actor) in definitions()
            .iter()
            .flat_map(|d| actors.iter().map(move |a| (d, a)))
        {
            for action in commands() {
                let command = Command {
                    meta: CommandMeta {
                        actor: actor.clone(),
                        at,
                        command_id: "fuzz".into(),
                        correlation_id: "fuzz".into(),
                        causation_id: None,
                    },
                    action,
                };
                if let Ok(new_events) = decide(definition, &state, &command) {
                    let _ = new_events.iter().fold(state.clone(), evolve);
                }
            }
        }
    }
});
