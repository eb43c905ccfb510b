//! Files under `<data-dir>/assets/<key>`, written atomically: the body goes
//! to a temp file under `<data-dir>/tmp/`, is fsynced and then renamed onto
//! its final name, so no half file is ever visible under `assets/`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::blocking;
use crate::model::{ObjectKey, ObjectMeta};
use crate::store::{Blobs, PutError, StoreError, StoredObject};
use crate::stream::ChunkSource;

/// The local [`Blobs`]. Metadata is not written beside the file: locally it
/// lives in the ledger.
#[derive(Clone)]
pub struct DiskBlobs {
    assets: PathBuf,
    tmp: PathBuf,
    /// Serialises directory creation/removal within the process, so that
    /// deleting the last file of an order cannot remove a directory another
    /// asset of the same order is being renamed into.
    dirs: Arc<Mutex<()>>,
}

impl DiskBlobs {
    /// Files go to `<data_dir>/assets/`, temp files to `<data_dir>/tmp/`;
    /// both are created on first use.
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        let data_dir = data_dir.as_ref();
        Self {
            assets: data_dir.join("assets"),
            tmp: data_dir.join("tmp"),
            dirs: Arc::new(Mutex::new(())),
        }
    }

    /// Where the object with `key` lives (or would live).
    pub fn path_of(&self, key: &ObjectKey) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.assets.join(key.as_str()))
    }

    /// The `assets/` directory.
    pub fn root(&self) -> &Path {
        &self.assets
    }
}

/// Keys come from KODE data (order and asset ids, file names), so they are
/// checked here too: relative, `/`-separated, no empty, `.` or `..` parts.
fn check_key(key: &ObjectKey) -> Result<(), StoreError> {
    let k = key.as_str();
    let bad = k.is_empty()
        || k.contains('\0')
        || k.contains('\\')
        || k.split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(StoreError::Permanent(format!(
            "invalid object key {k:?}: must be a relative path without empty, '.' or '..' parts"
        )));
    }
    Ok(())
}

fn io_error(what: &str, path: &Path, e: io::Error) -> StoreError {
    let message = format!("{what} {}: {e}", path.display());
    match e.kind() {
        io::ErrorKind::StorageFull
        | io::ErrorKind::Interrupted
        | io::ErrorKind::TimedOut
        | io::ErrorKind::WouldBlock
        | io::ErrorKind::ResourceBusy => StoreError::Unavailable(message),
        _ => StoreError::Permanent(message),
    }
}

/// A temp file that removes itself unless it was renamed away, also when the
/// `put` future is dropped half-way.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = std::fs::remove_file(&self.path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), error = %e, "could not remove temp file");
                }
            }
        }
    }
}

#[async_trait]
impl Blobs for DiskBlobs {
    async fn put(
        &self,
        key: &ObjectKey,
        _meta: &ObjectMeta,
        body: &mut dyn ChunkSource,
    ) -> Result<StoredObject, PutError> {
        let target = self.path_of(key)?;
        tokio::fs::create_dir_all(&self.tmp)
            .await
            .map_err(|e| io_error("cannot create", &self.tmp, e))?;
        let mut temp = TempFile {
            path: self.tmp.join(format!("{}.part", uuid::Uuid::new_v4())),
            armed: true,
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp.path)
            .await
            .map_err(|e| io_error("cannot create", &temp.path, e))?;

        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = body.next_chunk().await? {
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| io_error("cannot write", &temp.path, e))?;
        }
        file.flush()
            .await
            .map_err(|e| io_error("cannot write", &temp.path, e))?;
        file.sync_all()
            .await
            .map_err(|e| io_error("cannot fsync", &temp.path, e))?;
        drop(file);

        let from = temp.path.clone();
        let dirs = Arc::clone(&self.dirs);
        blocking(move || {
            let _guard = dirs.lock().unwrap_or_else(PoisonError::into_inner);
            install(&from, &target)
        })
        .await?;
        temp.armed = false;

        Ok(StoredObject {
            bytes,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let dirs = Arc::clone(&self.dirs);
        let assets = self.assets.clone();
        blocking(move || {
            let _guard = dirs.lock().unwrap_or_else(PoisonError::into_inner);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_error("cannot delete", &path, e)),
            }
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
                prune_empty_dirs(parent, &assets);
            }
            Ok(())
        })
        .await
    }
}

/// Creates the missing parent directories, renames `from` onto `target` and
/// fsyncs every directory whose entries changed, so the new name survives a
/// crash.
fn install(from: &Path, target: &Path) -> Result<(), StoreError> {
    let parent = target
        .parent()
        .ok_or_else(|| StoreError::Permanent(format!("no parent for {}", target.display())))?;
    let mut created = Vec::new();
    let mut dir = parent;
    while !dir.exists() {
        created.push(dir);
        match dir.parent() {
            Some(up) => dir = up,
            None => break,
        }
    }
    std::fs::create_dir_all(parent).map_err(|e| io_error("cannot create", parent, e))?;
    std::fs::rename(from, target).map_err(|e| io_error("cannot rename onto", target, e))?;
    sync_dir(parent)?;
    for dir in created {
        if let Some(up) = dir.parent() {
            sync_dir(up)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("cannot fsync", dir, e))
}

/// Removes now-empty directories from `dir` up to, not including, `assets`.
fn prune_empty_dirs(mut dir: &Path, assets: &Path) {
    while dir != assets && dir.starts_with(assets) {
        // Fails (and stops) at the first directory that is not empty.
        if std::fs::remove_dir(dir).is_err() {
            return;
        }
        match dir.parent() {
            Some(up) => dir = up,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests;
