//! Each node's store is the source of truth for its users' names; the usernames bucket on
//! NATS is how the nodes learn them from each other. A NATS that loses its store (every
//! server restarted without its files) comes back with an empty bucket: the claims are gone,
//! and a name could be given to another node. So after each set-up of the buckets a node
//! looks for its marker (`n-<node>`, written once all its names are claimed); without it,
//! the node claims every name its store holds again, then writes the marker. A name that
//! meanwhile went to another node is a conflict: reported (log line, `/metrics`, the file
//! `username-conflicts` in the data directory that `aiocr doctor` reads), never shared.

use super::link::{Claim, LinkError};
use super::{names, nats};
use async_nats::jetstream::kv;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A page of shard `shard`'s usernames after the given one (in byte order; empty: no more).
/// A dropped sender: the shard could not answer. Given to the bridge by the server (it
/// reads the shards' stores); kept here, with its only reader, so that the registry needs
/// nothing of the bridge.
pub type LocalNames =
    Arc<dyn Fn(u16, Option<String>) -> flume::Receiver<Vec<String>> + Send + Sync>;

/// The file, in the data directory, that lists the names of this node's users the registry
/// gives to another node (one `name<TAB>node` a line), as of the last restore; absent when
/// there are none.
pub fn conflicts_path(data_dir: &Path) -> PathBuf {
    data_dir.join("username-conflicts")
}

/// What restoring the claims found.
#[derive(Debug, Default)]
pub struct Restored {
    /// The marker was there: nothing to restore.
    pub marked: bool,
    /// Names confirmed as this node's (claimed again, or found still claimed).
    pub claimed: u64,
    /// Names the registry gives to another node.
    pub conflicts: Vec<(String, u16)>,
}

/// Where to restore claims from, and how long each NATS request may take.
pub struct Restore<'a> {
    pub registry: &'a kv::Store,
    pub node: u16,
    pub local_names: &'a LocalNames,
    pub shard_count: u16,
    pub timeout: Duration,
}

impl Restore<'_> {
    /// Claims this node's names again unless the registry has its marker.
    pub async fn run(&self) -> Result<Restored, String> {
        let marker = names::claims_marker_key(self.node);
        let found = tokio::time::timeout(self.timeout, self.registry.get(&marker))
            .await
            .map_err(|_| "the registry did not answer in time".to_string())?
            .map_err(|e| e.to_string())?;
        if found.is_some() {
            return Ok(Restored {
                marked: true,
                ..Restored::default()
            });
        }
        let mut restored = Restored::default();
        for shard in 0..self.shard_count {
            self.restore_shard(shard, &mut restored).await?;
        }
        // Written once: a second node's marker of the same id (which cannot exist) or a
        // marker written meanwhile by this node's earlier run changes nothing.
        let written = self.registry.create(&marker, "1".into());
        match tokio::time::timeout(self.timeout, written).await {
            Ok(Ok(_)) => Ok(restored),
            Ok(Err(error)) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(restored),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the registry did not answer in time".into()),
        }
    }

    async fn restore_shard(&self, shard: u16, restored: &mut Restored) -> Result<(), String> {
        let mut after: Option<String> = None;
        loop {
            let page = (self.local_names)(shard, after.clone())
                .recv_async()
                .await
                .map_err(|_| format!("shard {shard} could not list its names"))?;
            let Some(last) = page.last().cloned() else {
                return Ok(());
            };
            for name in &page {
                let claimed = nats::claim(self.registry, self.node, name);
                match tokio::time::timeout(self.timeout, claimed).await {
                    Ok(Ok(Claim::Granted)) => restored.claimed += 1,
                    Ok(Ok(Claim::Taken(other))) => restored.conflicts.push((name.clone(), other)),
                    Ok(Err(error)) => return Err(error.to_string()),
                    Err(_) => return Err(LinkError::Timeout.to_string()),
                }
            }
            after = Some(last);
        }
    }
}

/// Writes the conflicts found (or removes the file when there are none).
pub fn record_conflicts(data_dir: &Path, conflicts: &[(String, u16)]) -> std::io::Result<()> {
    let path = conflicts_path(data_dir);
    if conflicts.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        };
    }
    let text: String = conflicts
        .iter()
        .map(|(name, node)| format!("{name}\t{node}\n"))
        .collect();
    std::fs::write(path, text)
}

/// The conflicts the node last recorded (`aiocr doctor`).
pub fn read_conflicts(data_dir: &Path) -> std::io::Result<Vec<(String, u16)>> {
    let text = match std::fs::read_to_string(conflicts_path(data_dir)) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let (name, node) = line.split_once('\t')?;
            Some((name.to_string(), node.parse().ok()?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_round_trip_and_none_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_conflicts(dir.path()).unwrap().is_empty());
        let conflicts = vec![("a.b@c".to_string(), 3), ("zed".to_string(), 12)];
        record_conflicts(dir.path(), &conflicts).unwrap();
        assert_eq!(read_conflicts(dir.path()).unwrap(), conflicts);
        record_conflicts(dir.path(), &[]).unwrap();
        assert!(!conflicts_path(dir.path()).exists());
        record_conflicts(dir.path(), &[]).unwrap();
    }
}
