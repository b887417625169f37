//! Arbitrary text as a workflow definition or a working calendar (what `--workflows-dir` loads
//! at startup): parsing returns a definition or an error naming the problems, never panics; a
//! definition that parses can be registered and queried.

#![no_main]

use libfuzzer_sys::fuzz_target;

use diandan_workflows::{Calendar, Definition, Registry, Role};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Calendar::parse(source, "calendar-fuzz.toml");
    let Ok(definition) = Definition::parse(source, "fuzz.v1.toml") else {
        return;
    };
    for state in definition.states() {
        let _ = definition.is_final(&state.name);
        for transition in definition.available(&state.name, Role::StationHead) {
            let _ = definition.target_of(&state.name, &transition.command, None);
        }
    }
    let mut registry = Registry::builtin();
    let _ = registry.add(definition);
});
