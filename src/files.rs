//! Files only their owner may read (the SQLite database and its -wal/-shm, the key file, `.eml`
//! files): created with mode 0600, and tightened with a warning when found readable by others.

use std::io::Write;
use std::path::Path;

/// Creates `path` with `contents`, readable by its owner only; fails if it exists.
pub fn create_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

/// Creates `path` empty and owner-only unless it exists; SQLite then gives the -wal and -shm
/// files it creates beside it the same mode.
pub fn create_private_if_missing(path: &Path) -> std::io::Result<()> {
    match create_private(path, b"") {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Takes group and other permissions away from `path` when it exists and has any, with a
/// warning naming `what`: an earlier version, or a hand-made file, may have left it readable.
pub fn tighten(path: &Path, what: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            tracing::warn!(path = %path.display(), was = format!("{mode:o}"), "{what} was readable by others; now owner-only");
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    Ok(())
}
