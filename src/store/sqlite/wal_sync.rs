//! Makes committed WAL frames durable off the writer's path.
//!
//! The writer's connection commits with `synchronous=NORMAL`: SQLite writes the transaction's
//! frames to the `-wal` file but does not sync it. The writer then syncs the file here, on a
//! blocking thread, and answers the transaction's callers only once that sync returns; while
//! the disk syncs, it runs the next operations. An answered write is thus on disk as with
//! `synchronous=FULL`, and the fsync no longer stops the writer.
//!
//! The file is opened on the first sync, after the first commit created it. SQLite deletes the
//! `-wal` file only when the database's last connection closes, and the writer keeps its own
//! open until it stops; a handle to a deleted file is still checked for and replaced.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Syncs the WAL: blocking, so run on a blocking thread. A function so that tests can hold a
/// sync back and see operations arrive meanwhile.
pub(super) type SyncWal = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

/// Syncs the `-wal` file of the database at `db_path`.
pub(super) fn syncer(db_path: &std::path::Path) -> SyncWal {
    // Built from the OS string: `display()` would replace bytes that are not UTF-8.
    let mut path = db_path.as_os_str().to_owned();
    path.push("-wal");
    let path = PathBuf::from(path);
    let file: Mutex<Option<File>> = Mutex::new(None);
    Arc::new(move || {
        // Only one sync runs at a time: never contended.
        let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
        let current = match file.take() {
            Some(f) if f.metadata()?.nlink() > 0 => f,
            _ => File::options().write(true).open(&path).map_err(|e| {
                io::Error::new(e.kind(), format!("opening {}: {e}", path.display()))
            })?,
        };
        current
            .sync_data()
            .map_err(|e| io::Error::new(e.kind(), format!("syncing {}: {e}", path.display())))?;
        *file = Some(current);
        Ok(())
    })
}
