//! Where a node keeps the files of the models users brought: one pair per digest in one
//! directory (`<digest>.onnx`, `<digest>.json`), shared by every record that names the
//! digest. Blocking file operations: run them off the shards' executors (or at start).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CustomModel, ModelDigest};

pub struct ModelFiles {
    dir: PathBuf,
}

impl ModelFiles {
    /// The files in `dir`, made (readable by its owner only) if missing.
    pub fn open(dir: &Path) -> std::io::Result<ModelFiles> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(ModelFiles {
            dir: dir.to_path_buf(),
        })
    }

    /// Where a model's ONNX file and charsets.json are.
    pub fn paths(&self, digest: &ModelDigest) -> (PathBuf, PathBuf) {
        let hex = digest.hex();
        (
            self.dir.join(format!("{hex}.onnx")),
            self.dir.join(format!("{hex}.json")),
        )
    }

    /// Writes a checked model's files (each through a temporary file renamed into place, so
    /// a crash leaves none or all of it; an existing pair of the same digest is kept) and
    /// returns the model.
    pub fn keep(
        &self,
        digest: ModelDigest,
        onnx: &[u8],
        charsets: &[u8],
    ) -> Result<Arc<CustomModel>, String> {
        let (onnx_path, charsets_path) = self.paths(&digest);
        for (path, bytes) in [(&charsets_path, charsets), (&onnx_path, onnx)] {
            let kept = std::fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64);
            if !kept {
                write_atomically(path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        let text = std::str::from_utf8(charsets).map_err(|_| "charsets.json: not UTF-8")?;
        CustomModel::new(digest, onnx_path, onnx.len() as u64, text)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }

    /// The model of `digest`, from its files.
    pub fn model(&self, digest: ModelDigest) -> Result<Arc<CustomModel>, String> {
        let (onnx_path, charsets_path) = self.paths(&digest);
        let text = std::fs::read_to_string(&charsets_path)
            .map_err(|e| format!("{}: {e}", charsets_path.display()))?;
        let onnx_bytes = std::fs::metadata(&onnx_path)
            .map_err(|e| format!("{}: {e}", onnx_path.display()))?
            .len();
        CustomModel::new(digest, onnx_path, onnx_bytes, &text)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }

    /// Deletes a model's files (no record names them any more). A recognition thread that
    /// has the model loaded keeps its session until it unloads it.
    pub fn delete(&self, digest: &ModelDigest) {
        let (onnx, charsets) = self.paths(digest);
        // Already gone is what was asked for.
        let _ = std::fs::remove_file(onnx);
        let _ = std::fs::remove_file(charsets);
    }
}

impl ModelFiles {
    /// Deletes every file of the directory but the pairs of `named` (temporary files too):
    /// the number deleted. Run at start, before any addition.
    pub fn sweep(&self, named: &std::collections::HashSet<ModelDigest>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut deleted = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let digest = ModelDigest::of_file_name(&path);
            let kept = digest.is_some_and(|digest| {
                named.contains(&digest) && path.extension().is_some_and(|e| e != "tmp")
            });
            if !kept && entry.file_type().is_ok_and(|t| t.is_file()) {
                deleted += usize::from(std::fs::remove_file(&path).is_ok());
            }
        }
        deleted
    }
}

/// `bytes` into `path` through a private temporary file, fsynced, then renamed into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_kept_once_per_digest_and_deleted() {
        let dir = std::env::temp_dir().join(format!("aiocr-model-files-{}", std::process::id()));
        let files = ModelFiles::open(&dir).unwrap();
        let charsets = br#"{"charset": ["", "a"], "word": false, "image": [-1, 32], "channel": 1}"#;
        let digest = ModelDigest::of(b"onnx", charsets);
        let kept = files.keep(digest, b"onnx", charsets).unwrap();
        assert_eq!(kept.onnx_bytes, 4);
        let read = files.model(digest).unwrap();
        assert_eq!(read.digest, digest);
        assert_eq!(read.spec.charset.len(), 2);
        let other = ModelDigest::of(b"other", charsets);
        files.keep(other, b"other", charsets).unwrap();
        std::fs::write(dir.join("stray.tmp"), b"x").unwrap();
        let named = std::collections::HashSet::from([digest]);
        assert_eq!(files.sweep(&named), 3, "the other pair and the stray file");
        assert!(files.model(digest).is_ok() && files.model(other).is_err());
        files.delete(&digest);
        assert!(files.model(digest).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
