//! `<data>/meta.json`: what the data directory was created with (its shard count).

use super::StoreError;
use std::path::Path;

const META_FILE: &str = "meta.json";
const FORMAT_VERSION: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    format: u32,
    shard_count: u16,
}

/// The recorded shard count, `None` for a directory never opened by aiocr.
pub fn read_shard_count(data_dir: &Path) -> Result<Option<u16>, StoreError> {
    let path = data_dir.join(META_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(StoreError::Io(format!(
                "reading {}: {error}",
                path.display()
            )))
        }
    };
    let meta: Meta = serde_json::from_str(&text)
        .map_err(|error| StoreError::Corrupt(format!("{}: {error}", path.display())))?;
    if meta.format != FORMAT_VERSION {
        return Err(StoreError::Corrupt(format!(
            "{}: unknown format {}",
            path.display(),
            meta.format
        )));
    }
    if meta.shard_count == 0 || meta.shard_count > super::ids::MAX_SHARDS {
        return Err(StoreError::Corrupt(format!(
            "{}: shard count {}",
            path.display(),
            meta.shard_count
        )));
    }
    Ok(Some(meta.shard_count))
}

/// Records `shard_count` on first use; afterwards insists on the same count.
pub fn ensure_shard_count(data_dir: &Path, shard_count: u16) -> Result<(), StoreError> {
    let io = |what: &str, error: std::io::Error| {
        StoreError::Io(format!("{what} in {}: {error}", data_dir.display()))
    };
    std::fs::create_dir_all(data_dir).map_err(|e| io("creating the data directory", e))?;
    if let Some(recorded) = read_shard_count(data_dir)? {
        if recorded != shard_count {
            return Err(StoreError::ShardCountMismatch {
                data_dir: data_dir.to_path_buf(),
                recorded,
                requested: shard_count,
            });
        }
        return Ok(());
    }
    // Write a private temporary file, then hard-link it into place: the link fails if another
    // opener got there first (then its count is checked), and a crash never leaves a
    // half-written meta.json.
    let text = serde_json::to_string_pretty(&Meta {
        format: FORMAT_VERSION,
        shard_count,
    })
    .expect("meta serializes");
    let mut unique = [0u8; 8];
    getrandom::getrandom(&mut unique).map_err(|e| StoreError::Io(format!("random bytes: {e}")))?;
    let temporary = data_dir.join(format!("{META_FILE}.{}.tmp", u64::from_le_bytes(unique)));
    std::fs::write(&temporary, text).map_err(|e| io("writing a meta.json temporary", e))?;
    let synced = std::fs::File::open(&temporary).and_then(|file| file.sync_all());
    let linked = synced.and_then(|_| std::fs::hard_link(&temporary, data_dir.join(META_FILE)));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            ensure_shard_count(data_dir, shard_count)
        }
        Err(error) => Err(io("creating meta.json", error)),
    }
}
