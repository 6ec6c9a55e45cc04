//! The service API's keys: which configured key a presented one is, compared in constant
//! time against every configured key.

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::{Operation, ServiceApiSettings};

/// One configured key, as compared.
struct Entry {
    name: String,
    hash: [u8; 32],
    operations: Vec<Operation>,
}

/// The configured keys.
pub struct ApiKeys {
    entries: Vec<Entry>,
}

/// A recognised key: its name (for the logs) and what it may do.
#[derive(Debug, Clone, Copy)]
pub struct KeyHolder<'a> {
    /// The key's configured name.
    pub name: &'a str,
    operations: &'a [Operation],
}

impl KeyHolder<'_> {
    /// Whether the key may call `op`.
    pub fn may(&self, op: Operation) -> bool {
        self.operations.contains(&op)
    }
}

impl ApiKeys {
    /// The keys of `service_api.keys` (hashes were checked when the settings loaded; one
    /// that does not decode is left out, so it matches nothing).
    pub fn new(settings: &ServiceApiSettings) -> Self {
        let entries = settings
            .keys
            .iter()
            .filter_map(|k| {
                let hash: [u8; 32] = hex::decode(&k.hash).ok()?.try_into().ok()?;
                Some(Entry {
                    name: k.name.clone(),
                    hash,
                    operations: k.operations.clone(),
                })
            })
            .collect();
        Self { entries }
    }

    /// The configured key `presented` is, if any. Its hash is compared with every
    /// configured hash, each comparison in constant time and none skipped: the time taken
    /// depends on the number of keys only, never on how much of a key matched (comparing
    /// fixed-size hashes, not the keys, also hides the keys' lengths).
    pub fn identify(&self, presented: &str) -> Option<KeyHolder<'_>> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, e) in self.entries.iter().enumerate() {
            let hit = e.hash.ct_eq(&digest);
            // `MAX_KEYS` bounds the count far below u32.
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            index.conditional_assign(&i, hit);
            found |= hit;
        }
        if !bool::from(found) {
            return None;
        }
        let e = self.entries.get(usize::try_from(index).ok()?)?;
        Some(KeyHolder {
            name: &e.name,
            operations: &e.operations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{hash_key, ServiceKey};

    fn keys() -> ApiKeys {
        let key = |name: &str, k: &str, ops: Vec<Operation>| ServiceKey {
            name: name.into(),
            hash: hash_key(k),
            operations: ops,
        };
        ApiKeys::new(&ServiceApiSettings {
            enabled: true,
            keys: vec![
                key("a", &"a".repeat(40), vec![Operation::SessionsList]),
                key("b", &"b".repeat(40), vec![Operation::UsersBan]),
            ],
            ..Default::default()
        })
    }

    #[test]
    fn finds_each_key_and_nothing_else() {
        let k = keys();
        let a = k.identify(&"a".repeat(40)).unwrap();
        assert_eq!(a.name, "a");
        assert!(a.may(Operation::SessionsList) && !a.may(Operation::UsersBan));
        assert_eq!(k.identify(&"b".repeat(40)).unwrap().name, "b");
        assert!(k.identify(&"a".repeat(39)).is_none());
        assert!(k.identify("").is_none());
    }
}
