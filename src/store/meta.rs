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
        Err(error) => return Err(StoreError::Io(format!("reading {}: {error}", path.display()))),
    };
    let meta: Meta =
        serde_json::from_str(&text).map_err(|error| StoreError::Corrupt(format!("{}: {error}", path.display())))?;
    if meta.format != FORMAT_VERSION {
        return Err(StoreError::Corrupt(format!("{}: unknown format {}", path.display(), meta.format)));
    }
    Ok(Some(meta.shard_count))
}

/// Records `shard_count` on first use; afterwards insists on the same count.
pub fn ensure_shard_count(data_dir: &Path, shard_count: u16) -> Result<(), StoreError> {
    let io = |what: &str, error: std::io::Error| StoreError::Io(format!("{what} in {}: {error}", data_dir.display()));
    std::fs::create_dir_all(data_dir).map_err(|e| io("creating the data directory", e))?;
    if let Some(recorded) = read_shard_count(data_dir)? {
        if recorded != shard_count {
            return Err(StoreError::ShardCountMismatch { data_dir: data_dir.to_path_buf(), recorded, requested: shard_count });
        }
        return Ok(());
    }
    // Write-then-rename so a crash never leaves a half-written meta.json.
    let text = serde_json::to_string_pretty(&Meta { format: FORMAT_VERSION, shard_count }).expect("meta serializes");
    let temporary = data_dir.join(format!("{META_FILE}.tmp"));
    std::fs::write(&temporary, text).map_err(|e| io("writing meta.json.tmp", e))?;
    std::fs::File::open(&temporary).and_then(|file| file.sync_all()).map_err(|e| io("syncing meta.json.tmp", e))?;
    std::fs::rename(&temporary, data_dir.join(META_FILE)).map_err(|e| io("renaming meta.json", e))?;
    Ok(())
}
