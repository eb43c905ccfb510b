//! One `kode serve` per data directory. At start a pipeline puts the pushes
//! it finds in flight back to pending: done by a second instance, that would
//! steal the first one's work and process it twice. So the pipeline holds an
//! exclusive lock on `<data-dir>/serve.lock` for its whole life, taken before
//! anything else touches the directory. The one-shot commands (`kode sync`,
//! `kode dead-letters`) never take it and work beside a running serve.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::PipelineError;

pub const LOCK_FILE: &str = "serve.lock";

/// Held while the pipeline runs. The OS releases it when the file is closed
/// or the process ends in any way (`kill -9` included), so a stale lock file
/// never blocks a restart.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock without waiting and writes our pid into the file, for
    /// the message a second instance prints.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, PipelineError> {
        let path = data_dir.join(LOCK_FILE);
        let io_error = |source| PipelineError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            // The holder's pid is in there: only the new holder may clear it.
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // Unknown when unreadable, or read before the holder wrote it.
                let pid = file
                    .read_to_string(&mut holder)
                    .ok()
                    .and_then(|_| holder.trim().parse::<u32>().ok());
                return Err(PipelineError::InUse {
                    data_dir: data_dir.to_owned(),
                    pid,
                });
            }
            Err(TryLockError::Error(source)) => return Err(io_error(source)),
        }
        file.set_len(0).map_err(io_error)?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        writeln!(file, "{}", std::process::id()).map_err(io_error)?;
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        match DataDirLock::acquire(dir.path()) {
            Err(PipelineError::InUse { data_dir, pid }) => {
                assert_eq!(data_dir, dir.path());
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once dropped");
    }
}
