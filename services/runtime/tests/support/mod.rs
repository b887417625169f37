//! What the runtime's suites share.

use diandan_runtime::{App, RequestContext};
use diandan_workflows::order::TeamKind;
use diandan_workflows::OrgLevel;

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
