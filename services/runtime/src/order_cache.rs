//! Recently used orders as last folded (or as this process last wrote them), so that loading
//! one folds only the events it gained since. A load ([`App::load_order`]) still reads the
//! store from the cached revision on, so it is exactly as fresh as without the cache. A
//! command is first decided on the cached order without reading the store
//! ([`App::execute`]): a decision on a state another writer has since moved on loses its
//! append (expected revision) and is decided again on the stored order, and a refusal or a
//! duplicate is never answered from the cache (it too is decided again on the stored order).
//!
//! [`App::load_order`]: crate::App::load_order
//! [`App::execute`]: crate::App::execute

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::commands::LoadedOrder;

/// Orders kept; the oldest inserted is dropped first.
const CAPACITY: usize = 4096;

#[derive(Clone, Default)]
pub struct OrderCache {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    orders: HashMap<String, LoadedOrder>,
    /// Insertion order, for eviction.
    queue: VecDeque<String>,
}

impl OrderCache {
    /// The order as last folded, if kept.
    pub fn get(&self, order_id: &str) -> Option<LoadedOrder> {
        let inner = self.inner.lock().expect("order cache poisoned");
        inner.orders.get(order_id).cloned()
    }

    /// Keeps `loaded` unless a later revision of the order is kept already.
    pub fn put(&self, order_id: &str, loaded: &LoadedOrder) {
        if loaded.revision.is_none() {
            return;
        }
        let mut inner = self.inner.lock().expect("order cache poisoned");
        match inner.orders.get_mut(order_id) {
            Some(kept) if kept.revision >= loaded.revision => {}
            Some(kept) => *kept = loaded.clone(),
            None => {
                inner.orders.insert(order_id.to_owned(), loaded.clone());
                inner.queue.push_back(order_id.to_owned());
                while inner.queue.len() > CAPACITY {
                    if let Some(oldest) = inner.queue.pop_front() {
                        inner.orders.remove(&oldest);
                    }
                }
            }
        }
    }

    /// How many orders are kept.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .expect("order cache poisoned")
            .orders
            .len()
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
}
