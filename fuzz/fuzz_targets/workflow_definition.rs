//! Arbitrary text as a workflow definition or a working calendar (what `--workflows-dir` loads
//! at startup): parsing returns a definition or an error naming the problems, never panics; a
//! definition that parses can be registered and queried.

#![no_main]

use libfuzzer_sys::fuzz_target;

use diandan_workflows::order::Status;
use diandan_workflows::{Calendar, Definition, Registry};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Calendar::parse(source, "calendar-fuzz.toml");
    let Ok(definition) = Definition::parse(source, "fuzz.v1.toml") else {
        return;
    };
    // What parses is the open part of its workflow's table: every row is the table's.
    let table = definition.table();
    for state in definition.states() {
        let _ = definition.is_final(&state.name);
    }
    for t in definition.transitions() {
        let from = Status::parse(&t.from[0]).expect("a table state");
        let row = table
            .row(from, &t.command, t.outcome.as_deref())
            .expect("a table row");
        assert_eq!(row.target(from).as_str(), t.to);
        assert!(t.roles.iter().all(|r| row.roles.contains(r)));
    }
    let mut registry = Registry::builtin();
    let _ = registry.add(definition);
});
