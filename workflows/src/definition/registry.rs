//! Every version of every workflow, and the calendars they count time in.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::{DefinitionError, ProblemKind};
use super::{Definition, DefinitionId};
use crate::calendar::Calendar;

/// The shipped files, compiled in so the engine needs no disk to start.
const BUILTIN_CALENDARS: &[(&str, &str)] = &[(
    "calendar-cn-mainland.toml",
    include_str!("../../definitions/calendar-cn-mainland.toml"),
)];
const BUILTIN_DEFINITIONS: &[(&str, &str)] = &[
    (
        "dispatched-order.v1.toml",
        include_str!("../../definitions/dispatched-order.v1.toml"),
    ),
    (
        "dispatched-order.v2.toml",
        include_str!("../../definitions/dispatched-order.v2.toml"),
    ),
    (
        "open-claim.v1.toml",
        include_str!("../../definitions/open-claim.v1.toml"),
    ),
];

/// Workflow definitions by name and version, and calendars by name.
///
/// New orders start on [`Registry::latest`] and record its [`DefinitionId`]; an order already
/// running is decided by [`Registry::resolve`] of the id it recorded, so shipping v2 never
/// changes the rules under an order started on v1 (version pinning).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    workflows: BTreeMap<String, BTreeMap<u32, Definition>>,
    calendars: BTreeMap<String, Calendar>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The definitions and calendar shipped in `workflows/definitions/`.
    pub fn builtin() -> Registry {
        let mut registry = Registry::new();
        for (file, source) in BUILTIN_CALENDARS {
            let calendar = Calendar::parse(source, file).unwrap_or_else(|e| panic!("{e}"));
            registry.add_calendar(calendar);
        }
        for (file, source) in BUILTIN_DEFINITIONS {
            // A test parses every shipped file, so this cannot fail in a released build.
            let definition = Definition::parse(source, file).unwrap_or_else(|e| panic!("{e}"));
            registry.add(definition).unwrap_or_else(|e| panic!("{e}"));
        }
        registry
    }

    /// Loads every `*.toml` in `dir`: `calendar-*.toml` files are calendars, the others
    /// workflow definitions. Stops at the first file with problems (all of that file's
    /// problems are in the error).
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Registry, DefinitionError> {
        let mut registry = Registry::new();
        registry.extend_from_dir(dir)?;
        Ok(registry)
    }

    /// Adds every `*.toml` in `dir` to this registry (e.g. a v2 beside the shipped v1).
    pub fn extend_from_dir(&mut self, dir: impl AsRef<Path>) -> Result<(), DefinitionError> {
        let dir = dir.as_ref();
        let unreadable = |error: std::io::Error| {
            DefinitionError::single(
                &dir.display().to_string(),
                0,
                ProblemKind::Unreadable(error.to_string()),
            )
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(unreadable)? {
            let path = entry.map_err(unreadable)?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        let is_calendar = |path: &Path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("calendar-"))
        };
        // Calendars first: a definition is refused if its calendar is unknown.
        for path in paths.iter().filter(|p| is_calendar(p)) {
            self.add_calendar(Calendar::load(path)?);
        }
        for path in paths.iter().filter(|p| !is_calendar(p)) {
            self.add(Definition::load(path)?)?;
        }
        Ok(())
    }

    /// Registers a calendar, replacing one of the same name (a new year's holidays).
    pub fn add_calendar(&mut self, calendar: Calendar) {
        self.calendars.insert(calendar.name().to_owned(), calendar);
    }

    /// Registers a definition. Its calendar must be registered first, and its version must be
    /// new: a published version is never replaced, since running orders are pinned to it.
    pub fn add(&mut self, definition: Definition) -> Result<(), DefinitionError> {
        if !self.calendars.contains_key(definition.calendar()) {
            return Err(DefinitionError::single(
                definition.file(),
                0,
                ProblemKind::UnknownCalendar {
                    workflow: definition.name().to_owned(),
                    calendar: definition.calendar().to_owned(),
                },
            ));
        }
        let versions = self
            .workflows
            .entry(definition.name().to_owned())
            .or_default();
        if let Some(existing) = versions.get(&definition.version()) {
            return Err(DefinitionError::single(
                definition.file(),
                definition.version_line,
                ProblemKind::DuplicateVersion {
                    name: definition.name().to_owned(),
                    version: definition.version(),
                    first_file: existing.file().to_owned(),
                },
            ));
        }
        versions.insert(definition.version(), definition);
        Ok(())
    }

    /// The newest version of a workflow: what new orders start on.
    pub fn latest(&self, name: &str) -> Option<&Definition> {
        self.workflows.get(name)?.values().next_back()
    }

    /// One version of a workflow: what a running order is pinned to.
    pub fn get(&self, name: &str, version: u32) -> Option<&Definition> {
        self.workflows.get(name)?.get(&version)
    }

    /// The definition an order recorded when it started.
    pub fn resolve(&self, id: &DefinitionId) -> Option<&Definition> {
        self.get(&id.name, id.version)
    }

    /// The registered versions of a workflow, oldest first.
    pub fn versions(&self, name: &str) -> Vec<u32> {
        self.workflows
            .get(name)
            .map(|v| v.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The names of the registered workflows.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.workflows.keys().map(String::as_str)
    }

    pub fn calendar(&self, name: &str) -> Option<&Calendar> {
        self.calendars.get(name)
    }

    /// The calendar a definition counts its deadlines in. Always present for a definition
    /// taken from this registry ([`Registry::add`] checks it).
    pub fn calendar_for(&self, definition: &Definition) -> Option<&Calendar> {
        self.calendar(definition.calendar())
    }
}
