//! The object residency map: which region holds each stored object (file,
//! upload, batch, vector store, stored response, conversation, stored chat
//! completion) this agent's applications created, kept in sled under the
//! agent's state directory so it survives restarts.
//!
//! An entry is written when the answer that created the object arrives and
//! flushed to disk right after; it expires after `[routing] object_ttl_days`
//! (objects such as batch files and stored responses live for days to weeks
//! at the provider) or when the application deletes the object. An entry
//! that cannot be read is an error for the request that names it: such a
//! request is refused, never routed by guess.

use std::path::Path;
use std::time::Duration;

use residency_proto::{RegionId, Tier};
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info};

use crate::plan::objects::Held;

/// Bytes of sled page cache for the map.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// The map.
#[derive(Debug, Clone)]
pub struct ObjectMap {
    tree: sled::Tree,
    ttl_ms: u64,
}

/// One stored entry.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    region: String,
    tier: Tier,
    expires_ms: u64,
}

/// An entry that cannot be read: the object's id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the object map entry for {0} is damaged")]
pub struct Damaged(pub String);

impl ObjectMap {
    /// Opens (or creates) the map in `dir`; entries live `ttl`.
    pub fn open(dir: &Path, ttl: Duration) -> Result<Self, sled::Error> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(1000))
            .open()?;
        let tree = db.open_tree("objects")?;
        Ok(ObjectMap {
            tree,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Records that `id` was created in `region` by a request at `tier`.
    pub fn record(&self, id: &str, region: &RegionId, tier: Tier, now_ms: u64) {
        let entry = Entry {
            region: region.to_string(),
            tier,
            expires_ms: now_ms.saturating_add(self.ttl_ms),
        };
        let Ok(bytes) = serde_json::to_vec(&entry) else {
            return;
        };
        match self.tree.insert(id.as_bytes(), bytes) {
            Ok(_) => {
                info!(object = id, region = %region, tier = %tier, "object recorded");
                let tree = self.tree.clone();
                // Durable now rather than at the next periodic flush.
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = tree.flush() {
                        error!(error = %e, "object map flush failed");
                    }
                });
            }
            Err(e) => error!(object = id, error = %e, "object not recorded"),
        }
    }

    /// Forgets `id` (the application deleted it).
    pub fn forget(&self, id: &str) {
        if let Ok(Some(_)) = self.tree.remove(id.as_bytes()) {
            debug!(object = id, "object forgotten");
        }
    }

    /// Where the objects among `ids` live, for those the map holds and that
    /// have not expired at `now_ms`. An entry that cannot be read is an
    /// error naming the object.
    pub fn held(&self, ids: &[String], now_ms: u64) -> Result<Vec<Held>, Damaged> {
        let mut out = Vec::new();
        for id in ids {
            let bytes = match self.tree.get(id.as_bytes()) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    error!(object = %id, error = %e, "object map unreadable");
                    return Err(Damaged(id.clone()));
                }
            };
            let entry: Entry = match serde_json::from_slice(&bytes) {
                Ok(e) => e,
                Err(e) => {
                    error!(object = %id, error = %e, "object map entry damaged");
                    return Err(Damaged(id.clone()));
                }
            };
            if entry.expires_ms <= now_ms {
                continue;
            }
            let region = RegionId::new(&entry.region).map_err(|_| {
                error!(object = %id, "object map entry names no valid region");
                Damaged(id.clone())
            })?;
            out.push(Held {
                id: id.clone(),
                region,
                tier: entry.tier,
            });
        }
        Ok(out)
    }

    /// Removes expired entries; how many.
    pub fn sweep(&self, now_ms: u64) -> usize {
        let mut gone = 0;
        for item in self.tree.iter() {
            let Ok((k, v)) = item else { continue };
            let expired = serde_json::from_slice::<Entry>(&v)
                .map(|e| e.expires_ms <= now_ms)
                // A damaged entry stays, so the request naming it is refused.
                .unwrap_or(false);
            if expired && self.tree.remove(&k).is_ok() {
                gone += 1;
            }
        }
        gone
    }

    /// Entries held (expired ones until the next sweep).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Overwrites the entry for `id` with bytes that are not an entry (tests
    /// of damage handling).
    #[doc(hidden)]
    pub fn damage(&self, id: &str) {
        let _ = self.tree.insert(id.as_bytes(), &b"\xff not an entry"[..]);
        let _ = self.tree.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_survive_reopening_expire_and_report_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mumbai = RegionId::new("aws:ap-south-1").unwrap();
        {
            let map = ObjectMap::open(dir.path(), Duration::from_secs(60)).unwrap();
            map.record("file-1", &mumbai, Tier::Restricted, 1_000);
            map.record("resp_2", &mumbai, Tier::Public, 1_000);
            map.tree.flush().unwrap();
        }
        // The flush task of the last record may hold the database a moment.
        let mut tries = 0;
        let map = loop {
            match ObjectMap::open(dir.path(), Duration::from_secs(60)) {
                Ok(m) => break m,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        let ids = vec!["file-1".to_owned(), "file-unknown".to_owned()];
        let held = map.held(&ids, 2_000).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].region, mumbai);
        assert_eq!(held[0].tier, Tier::Restricted);
        // Expired entries are not held, and a sweep removes them.
        assert!(map.held(&ids, 62_000).unwrap().is_empty());
        assert_eq!(map.sweep(62_000), 2);
        assert!(map.is_empty());
        // Deleted objects are forgotten; damaged entries are errors.
        map.record("vs_3", &mumbai, Tier::Public, 1_000);
        map.forget("vs_3");
        assert!(map.held(&["vs_3".into()], 2_000).unwrap().is_empty());
        map.record("batch_4", &mumbai, Tier::Public, 1_000);
        map.damage("batch_4");
        assert_eq!(
            map.held(&["batch_4".into()], 2_000),
            Err(Damaged("batch_4".into()))
        );
        assert_eq!(map.sweep(u64::MAX), 0, "a damaged entry is kept");
    }
}
