//! What the runtime's suites share.

#![allow(dead_code)] // each suite uses its own part

use diandan_runtime::auth::Claims;
use diandan_runtime::{App, RequestContext};
use diandan_workflows::order::{Action, Assignee, TeamKind};
use diandan_workflows::validate::Location;
use diandan_workflows::{OrgLevel, Role};

/// An app over a fresh embedded store in `dir`, with [`register_v1_of_t1`] done.
pub async fn app_with_v1_of_t1(dir: &std::path::Path) -> App {
    let store: std::sync::Arc<dyn diandan_store::EventStore> =
        std::sync::Arc::new(diandan_store::SqliteStore::open(dir.join("events.db")).unwrap());
    let app = App::open(
        store,
        dir,
        diandan_runtime::auth::TokenSigner::new(b"test".to_vec()),
        false,
        diandan_workflows::Registry::builtin(),
    )
    .unwrap();
    register_v1_of_t1(&app).await;
    app
}

/// The volunteer `v1` of team `t1` at `s1`, as the directory knows them: field volunteers act
/// only on orders their teams were offered or they hold.
pub async fn register_v1_of_t1(app: &App) {
    use diandan_workflows::directory::DirectoryEvent;
    let system = RequestContext::system("test-directory".to_owned());
    let events = [
        DirectoryEvent::OrgNodeRegistered {
            id: "s1".into(),
            name: "测试站".into(),
            level: OrgLevel::Centre,
            parent_id: None,
            location: None,
        },
        DirectoryEvent::TeamRegistered {
            id: "t1".into(),
            name: "测试队".into(),
            kind: TeamKind::Team,
            node_id: "s1".into(),
            skills: vec![diandan_workflows::Category::Repair],
            leader_id: None,
        },
        DirectoryEvent::VolunteerRegistered {
            id: "v1".into(),
            name: "志愿者一".into(),
            team_ids: vec!["t1".into()],
            skills: vec![],
            phone_masked: None,
        },
    ];
    for event in events {
        let ctx = RequestContext {
            command_id: uuid::Uuid::new_v4().to_string(),
            ..system.clone()
        };
        app.directory.register(&ctx, event).await.unwrap();
    }
}

pub fn ctx(sub: &str, role: Role) -> RequestContext {
    let id = uuid::Uuid::new_v4().to_string();
    RequestContext {
        claims: Claims {
            sub: sub.into(),
            role,
            node: Some("s1".into()),
            acc: None,
            exp: i64::MAX,
        },
        // The scope the permission table gives the role for reading an order: its own part.
        scope: diandan_workflows::permissions::grant(
            diandan_workflows::permissions::Operation::GetOrder,
            role,
        )
        .expect("every role reads orders"),
        command_id: id.clone(),
        correlation_id: id,
    }
}

/// Every step of one order through the loop, by `requester`, a head and volunteer `v1` of
/// team `t1` at station `s1`; the review is a 1-star one (a follow-up notice).
pub fn the_loop(requester: RequestContext, order_id: &str) -> Vec<(RequestContext, Action)> {
    let here = Location {
        lat: 29.87,
        lng: 114.28,
        address: String::new(),
    };
    // No org tree here: the head's subtree is not what this test is about (tests/permissions.rs).
    let head = RequestContext {
        scope: diandan_workflows::permissions::Scope::All,
        ..ctx("head", Role::StationHead)
    };
    let volunteer = ctx("v1", Role::Volunteer);
    vec![
        (
            requester.clone(),
            Action::Place {
                order_id: order_id.into(),
                station_id: "s1".into(),
                category: "repair".into(),
                description: "楼道灯坏了".into(),
                location: here.clone(),
                contact_phone: "13812345678".into(),
                wanted_time: None,
                on_behalf_of: None,
                required_volunteers: None,
                workflow: None,
            },
        ),
        (
            head.clone(),
            Action::Triage {
                accept: true,
                reason: String::new(),
            },
        ),
        (
            head.clone(),
            Action::Dispatch {
                assignee: Assignee {
                    team_id: "t1".into(),
                    kind: TeamKind::Team,
                    node_id: "s1".into(),
                    level: OrgLevel::Station,
                },
                reason: String::new(),
            },
        ),
        (
            volunteer.clone(),
            Action::Accept {
                team_id: "t1".into(),
                member: None,
            },
        ),
        (
            volunteer.clone(),
            Action::CheckIn {
                location: here.clone(),
            },
        ),
        (
            volunteer.clone(),
            Action::CheckOut {
                location: here.clone(),
            },
        ),
        (
            volunteer.clone(),
            Action::Complete {
                note: "已修好".into(),
                photos: vec![],
            },
        ),
        (
            requester,
            Action::Review {
                rating: 1,
                comment: "没修好".into(),
            },
        ),
    ]
}
