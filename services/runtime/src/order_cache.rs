//! Recently used orders (and the ledger's streams) as last folded (or as this process last
//! wrote them), so that loading one folds only the events it gained since. A load ([`App::load_order`]) still reads the
//! store from the cached revision on, so it is exactly as fresh as without the cache. A
//! command is first decided on the cached order without reading the store
//! ([`App::execute`]): a decision on a state another writer has since moved on loses its
//! append (expected revision) and is decided again on the stored order, and a refusal or a
//! duplicate is never answered from the cache (it too is decided again on the stored order).
//!
//! [`App::load_order`]: crate::App::load_order
//! [`App::execute`]: crate::App::execute

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::commands::LoadedOrder;

/// Orders kept; the oldest inserted is dropped first.
const CAPACITY: usize = 4096;

/// Other streams kept (the ledger's hours, points, shop items and redemptions): fewer, since
/// a volunteer's hours record holds every service they gave.
const OTHER_CAPACITY: usize = 1024;

/// A stream's state as last folded, and the revision it was folded to.
pub trait Folded: Clone {
    /// The revision of the last event folded; `None` for an empty stream (never kept).
    fn revision(&self) -> Option<u64>;
}

impl Folded for LoadedOrder {
    fn revision(&self) -> Option<u64> {
        self.revision
    }
}

/// Any stream's state, for streams whose state types live in other crates (the ledger's): the
/// stream's name says which type it holds.
#[derive(Clone)]
pub struct AnyFolded {
    revision: Option<u64>,
    state: Arc<dyn Any + Send + Sync>,
}

impl AnyFolded {
    pub fn new<T: Any + Send + Sync>(revision: Option<u64>, state: T) -> AnyFolded {
        AnyFolded {
            revision,
            state: Arc::new(state),
        }
    }

    /// The state, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.state.downcast_ref()
    }
}

impl Folded for AnyFolded {
    fn revision(&self) -> Option<u64> {
        self.revision
    }
}

/// Recently used streams as last folded, by key; the oldest inserted is dropped first.
pub struct StreamCache<T> {
    inner: Arc<Mutex<Inner<T>>>,
    capacity: usize,
}

/// The order cache of [`App`](crate::App).
pub type OrderCache = StreamCache<LoadedOrder>;

/// The cache of the other streams a process folds (the ledger's).
pub type OtherStreams = StreamCache<AnyFolded>;

impl<T> Clone for StreamCache<T> {
    fn clone(&self) -> Self {
        StreamCache {
            inner: self.inner.clone(),
            capacity: self.capacity,
        }
    }
}

impl Default for StreamCache<LoadedOrder> {
    fn default() -> Self {
        StreamCache::with_capacity(CAPACITY)
    }
}

impl Default for StreamCache<AnyFolded> {
    fn default() -> Self {
        StreamCache::with_capacity(OTHER_CAPACITY)
    }
}

struct Inner<T> {
    kept: HashMap<String, T>,
    /// Insertion order, for eviction.
    queue: VecDeque<String>,
}

impl<T: Folded> StreamCache<T> {
    /// A cache of at most `capacity` streams.
    pub fn with_capacity(capacity: usize) -> StreamCache<T> {
        StreamCache {
            inner: Arc::new(Mutex::new(Inner {
                kept: HashMap::new(),
                queue: VecDeque::new(),
            })),
            capacity,
        }
    }

    /// The stream as last folded, if kept.
    pub fn get(&self, key: &str) -> Option<T> {
        let inner = self.inner.lock().expect("stream cache poisoned");
        inner.kept.get(key).cloned()
    }

    /// Keeps `folded` unless a later revision of the stream is kept already.
    pub fn put(&self, key: &str, folded: &T) {
        if folded.revision().is_none() {
            return;
        }
        let mut inner = self.inner.lock().expect("stream cache poisoned");
        match inner.kept.get_mut(key) {
            Some(kept) if kept.revision() >= folded.revision() => {}
            Some(kept) => *kept = folded.clone(),
            None => {
                inner.kept.insert(key.to_owned(), folded.clone());
                inner.queue.push_back(key.to_owned());
                while inner.queue.len() > self.capacity {
                    if let Some(oldest) = inner.queue.pop_front() {
                        inner.kept.remove(&oldest);
                    }
                }
            }
        }
    }

    /// How many streams are kept.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("stream cache poisoned").kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(revision: u64) -> LoadedOrder {
        let mut loaded = LoadedOrder::default();
        loaded.revision = Some(revision);
        loaded.position = revision + 100;
        loaded
    }

    #[test]
    fn keeps_the_latest_revision_and_a_bounded_number_of_orders() {
        let cache = OrderCache::default();
        cache.put("a", &at(3));
        cache.put("a", &at(2));
        assert_eq!(cache.get("a").unwrap().revision, Some(3), "never older");
        cache.put("a", &at(5));
        assert_eq!(cache.get("a").unwrap().revision, Some(5));
        cache.put("empty", &LoadedOrder::default());
        assert!(cache.get("empty").is_none(), "an empty stream is not kept");
        for i in 0..CAPACITY + 10 {
            cache.put(&format!("o{i}"), &at(0));
        }
        assert_eq!(cache.len(), CAPACITY);
        assert!(cache.get("a").is_none(), "the oldest went first");
        assert!(cache.get(&format!("o{}", CAPACITY + 9)).is_some());
    }

    #[test]
    fn other_streams_keep_their_own_types() {
        let cache = OtherStreams::default();
        cache.put(
            "hours-v1",
            &AnyFolded::new(Some(4), String::from("four events")),
        );
        cache.put("hours-v1", &AnyFolded::new(Some(3), String::from("three")));
        let kept = cache.get("hours-v1").unwrap();
        assert_eq!(
            kept.get::<String>().map(String::as_str),
            Some("four events")
        );
        assert!(
            kept.get::<u64>().is_none(),
            "another type is not this stream's"
        );
        for i in 0..OTHER_CAPACITY + 1 {
            cache.put(&format!("points-{i}"), &AnyFolded::new(Some(0), i));
        }
        assert_eq!(cache.len(), OTHER_CAPACITY);
    }
}
