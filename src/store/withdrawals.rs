//! Uploads refused (5004) after their reservation was written, kept across a stop made while
//! the disk still failed, so that the next start withdraws them
//! ([`ShardStore::withdraw_unacknowledged`]): a refused request costs nothing, also when the
//! server stopped before its disk came back.
//!
//! `<data>/shard-<n>.withdrawals` is written in full (`FILE_BYTES`) at every start, so a stop
//! overwrites blocks the file already has: that needs no free space, and works on a full disk
//! where the file system overwrites in place (ext4, xfs, tmpfs). Where it cannot (a
//! copy-on-write file system, or an I/O error), the stop logs the ids instead.
//!
//! Layout (little-endian): the number of ids (u64), the first 8 bytes of the BLAKE3 hash of
//! the ids' bytes (a torn write is detected, not trusted), the ids (u64 each), zeros.

use super::layout;
use super::{ShardStore, StoreError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Ids one file holds: more than the uploads a shard has in progress at once at the default
/// limits' scale of a failure (each refused one was waiting for the failed flush).
pub const CAPACITY: usize = 8190;
const HEADER_BYTES: usize = 16;
const FILE_BYTES: usize = HEADER_BYTES + CAPACITY * 8;

pub fn path(data_dir: &Path, shard: u16) -> PathBuf {
    data_dir.join(format!("shard-{shard}.withdrawals"))
}

/// The ids a stop kept (none if the file does not exist yet).
pub fn read(data_dir: &Path, shard: u16) -> Result<Vec<u64>, StoreError> {
    let path = path(data_dir, shard);
    let io = |error: std::io::Error| StoreError::Io(format!("reading {}: {error}", path.display()));
    let mut bytes = Vec::new();
    match std::fs::File::open(&path) {
        Ok(mut file) => file.read_to_end(&mut bytes).map_err(io)?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io(error)),
    };
    decode(&bytes)
        .ok_or_else(|| StoreError::Corrupt(format!("{}: not a list of upload ids", path.display())))
}

/// Writes `ids` over the file in place and syncs it. The ids beyond `CAPACITY` are returned
/// (not kept).
pub fn save(data_dir: &Path, shard: u16, ids: &[u64]) -> std::io::Result<Vec<u64>> {
    let (kept, beyond) = ids.split_at(ids.len().min(CAPACITY));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path(data_dir, shard))?;
    file.seek(std::io::SeekFrom::Start(0))?;
    file.write_all(&encode(kept))?;
    file.sync_data()?;
    Ok(beyond.to_vec())
}

/// Replaces the file with an empty list of its full size (at start, after the kept ids were
/// withdrawn and flushed), so that a later `save` needs no new block.
pub fn clear(data_dir: &Path, shard: u16) -> Result<(), StoreError> {
    let path = path(data_dir, shard);
    let mut bytes = encode(&[]);
    bytes.resize(FILE_BYTES, 0);
    layout::write_file_atomically(&path, &bytes, true)
        .map_err(|error| StoreError::Io(format!("writing {}: {error}", path.display())))
}

fn encode(ids: &[u64]) -> Vec<u8> {
    assert!(ids.len() <= CAPACITY, "the file holds CAPACITY ids");
    let id_bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    let mut bytes = Vec::with_capacity(HEADER_BYTES + id_bytes.len());
    bytes.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&blake3::hash(&id_bytes).as_bytes()[..8]);
    bytes.extend_from_slice(&id_bytes);
    bytes
}

fn decode(bytes: &[u8]) -> Option<Vec<u64>> {
    let count = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    if count > CAPACITY {
        return None;
    }
    let id_bytes = bytes.get(HEADER_BYTES..HEADER_BYTES + count * 8)?;
    if blake3::hash(id_bytes).as_bytes()[..8] != bytes[8..HEADER_BYTES] {
        return None;
    }
    let ids = id_bytes
        .chunks_exact(8)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
    Some(ids.collect())
}

impl ShardStore {
    /// At start: withdraws the uploads the previous run kept (it stopped with its disk
    /// failed). The number withdrawn; `clear_kept_withdrawals` after the next flush.
    pub fn withdraw_kept(&mut self, reason: &str, now_ms: u64) -> Result<usize, StoreError> {
        let mut withdrawn = 0;
        for upload_id in read(&self.data_dir, self.shard)? {
            let record = self.withdraw_unacknowledged(upload_id, reason, now_ms)?;
            withdrawn += usize::from(record.is_some());
        }
        Ok(withdrawn)
    }

    /// Empties the kept list (once what `withdraw_kept` did is flushed), at its full size.
    pub fn clear_kept_withdrawals(&self) -> Result<(), StoreError> {
        clear(&self.data_dir, self.shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_ids_round_trip_in_place_and_a_torn_list_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read(dir.path(), 3).unwrap(),
            Vec::<u64>::new(),
            "no file yet"
        );
        assert!(
            save(dir.path(), 3, &[1]).is_err(),
            "a stop writes only a prepared file"
        );
        clear(dir.path(), 3).unwrap();
        let file = path(dir.path(), 3);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), FILE_BYTES as u64);
        assert_eq!(read(dir.path(), 3).unwrap(), Vec::<u64>::new());

        let ids: Vec<u64> = (0..CAPACITY as u64 + 5).map(|i| i * 7 + 1).collect();
        let beyond = save(dir.path(), 3, &ids).unwrap();
        assert_eq!(beyond, ids[CAPACITY..]);
        assert_eq!(read(dir.path(), 3).unwrap(), ids[..CAPACITY]);
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            FILE_BYTES as u64,
            "written in place"
        );
        save(dir.path(), 3, &[42, 43]).unwrap();
        assert_eq!(read(dir.path(), 3).unwrap(), vec![42, 43]);

        let mut torn = std::fs::read(&file).unwrap();
        torn[HEADER_BYTES] ^= 1;
        std::fs::write(&file, &torn).unwrap();
        assert!(matches!(read(dir.path(), 3), Err(StoreError::Corrupt(_))));
    }
}
