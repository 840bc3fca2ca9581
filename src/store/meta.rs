//! `<data>/meta.json`: what the data directory was created with: its shard count and its id
//! (16 random bytes, hex), which every shard of it carries (identity.rs).
//!
//! Format 1 (before shard identities) had no id: it is given one the first time this
//! version opens it.

use super::StoreError;
use std::path::Path;

const META_FILE: &str = "meta.json";
const FORMAT_VERSION: u32 = 2;
/// The format that had no data directory id.
const FORMAT_WITHOUT_ID: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    format: u32,
    shard_count: u16,
    #[serde(default)]
    data_dir_id: String,
}

/// What meta.json says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDirMeta {
    pub shard_count: u16,
    /// 32 hex characters.
    pub data_dir_id: String,
}

/// The recorded shard count, `None` for a directory never opened by aiocr.
pub fn read_shard_count(data_dir: &Path) -> Result<Option<u16>, StoreError> {
    Ok(read(data_dir)?.map(|meta| meta.shard_count))
}

/// meta.json, `None` for a directory never opened by aiocr. A format-1 file reads with an
/// empty id.
pub fn read(data_dir: &Path) -> Result<Option<DataDirMeta>, StoreError> {
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
    let corrupt = |what: String| StoreError::Corrupt(format!("{}: {what}", path.display()));
    let meta: Meta = serde_json::from_str(&text).map_err(|error| corrupt(error.to_string()))?;
    if meta.format != FORMAT_VERSION && meta.format != FORMAT_WITHOUT_ID {
        return Err(corrupt(format!("unknown format {}", meta.format)));
    }
    if meta.shard_count == 0 || meta.shard_count > super::ids::MAX_SHARDS {
        return Err(corrupt(format!("shard count {}", meta.shard_count)));
    }
    let id_ok =
        meta.data_dir_id.len() == 32 && meta.data_dir_id.bytes().all(|b| b.is_ascii_hexdigit());
    if meta.format == FORMAT_VERSION && !id_ok {
        return Err(corrupt(format!("data_dir_id {:?}", meta.data_dir_id)));
    }
    Ok(Some(DataDirMeta {
        shard_count: meta.shard_count,
        data_dir_id: if meta.format == FORMAT_VERSION {
            meta.data_dir_id
        } else {
            String::new()
        },
    }))
}

/// Records `shard_count` and a fresh id on first use (or gives a format-1 file its id);
/// afterwards insists on the same count. Returns what meta.json now says.
pub fn ensure(data_dir: &Path, shard_count: u16) -> Result<DataDirMeta, StoreError> {
    let io = |what: &str, error: std::io::Error| {
        StoreError::Io(format!("{what} in {}: {error}", data_dir.display()))
    };
    super::layout::create_private_dir(data_dir)
        .map_err(|e| io("creating the data directory", e))?;
    match read(data_dir)? {
        Some(meta) if meta.shard_count != shard_count => Err(StoreError::ShardCountMismatch {
            data_dir: data_dir.to_path_buf(),
            recorded: meta.shard_count,
            requested: shard_count,
        }),
        Some(meta) if !meta.data_dir_id.is_empty() => Ok(meta),
        Some(_format_without_id) => {
            let meta = DataDirMeta {
                shard_count,
                data_dir_id: new_id()?,
            };
            write(data_dir, &meta, Replace::Yes)?;
            // Two processes upgrading at once: whoever renamed last wins; read it back.
            let written = read(data_dir)?;
            written.ok_or_else(|| {
                io(
                    "reading meta.json back",
                    std::io::ErrorKind::NotFound.into(),
                )
            })
        }
        None => {
            let meta = DataDirMeta {
                shard_count,
                data_dir_id: new_id()?,
            };
            match write(data_dir, &meta, Replace::No) {
                Ok(()) => Ok(meta),
                // Another opener got there first: its file decides.
                Err(StoreError::Io(_)) if data_dir.join(META_FILE).exists() => {
                    ensure(data_dir, shard_count)
                }
                Err(error) => Err(error),
            }
        }
    }
}

fn new_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| StoreError::Io(format!("random bytes: {e}")))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[derive(PartialEq, Eq)]
enum Replace {
    Yes,
    No,
}

/// Writes a private temporary file, fsyncs it, then puts it in place: hard-linked (fails if
/// another opener got there first) or renamed over the old one. A crash never leaves a
/// half-written meta.json.
fn write(data_dir: &Path, meta: &DataDirMeta, replace: Replace) -> Result<(), StoreError> {
    let text = serde_json::to_string_pretty(&Meta {
        format: FORMAT_VERSION,
        shard_count: meta.shard_count,
        data_dir_id: meta.data_dir_id.clone(),
    })
    .expect("meta serializes");
    super::layout::write_file_atomically(
        &data_dir.join(META_FILE),
        text.as_bytes(),
        replace == Replace::Yes,
    )
    .map_err(|error| {
        StoreError::Io(format!(
            "writing meta.json in {}: {error}",
            data_dir.display()
        ))
    })
}
