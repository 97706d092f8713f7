//! A bounded, thread-safe memo of pure answers (casbin decisions, verified
//! access tokens): readers share a lock, a miss is computed outside it, and
//! a full memo first drops what the caller says is stale, then starts over
//! if that freed nothing, so memory stays bounded whatever the key space.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{PoisonError, RwLock};

/// At most `capacity` answers of type `V` by key `K`.
pub struct Memo<K, V> {
    capacity: usize,
    entries: RwLock<HashMap<K, V>>,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// An empty memo holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Memo<K, V> {
        Memo {
            capacity,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The answer remembered for `key`, if any.
    pub fn get(&self, key: &K) -> Option<V> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &K) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Remembers `value` for `key`. When the memo is full, entries for
    /// which `keep` is false go first; if none do, every entry goes.
    pub fn insert(&self, key: K, value: V, keep: impl Fn(&V) -> bool) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.retain(|_, v| keep(v));
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;

    #[test]
    fn a_full_memo_drops_stale_entries_first_then_everything() {
        let memo = Memo::new(2);
        memo.insert(1, 10, |_| true);
        memo.insert(2, 20, |_| true);
        // Full: 10 is stale, so only it goes.
        memo.insert(3, 30, |v| *v != 10);
        assert_eq!(
            (memo.get(&1), memo.get(&2), memo.get(&3)),
            (None, Some(20), Some(30))
        );
        // Full and nothing stale: it starts over with the new entry.
        memo.insert(4, 40, |_| true);
        assert_eq!(
            (memo.get(&2), memo.get(&3), memo.get(&4)),
            (None, None, Some(40))
        );
    }
}
