//! Replacing a file atomically, with the permissions a user expects, through a symlink.
//!
//! A reader sees the old bytes or the new ones, never a mix: the new bytes go to a temporary file
//! beside the file, are fsynced, and renamed over it; then the directory is fsynced so the
//! rename survives a power loss.
//!
//! Permissions are what the same file written by hand would have: a replaced file keeps its
//! mode; a new one gets `0666 & !umask`. The umask is not read (`umask(2)` can only be read by
//! setting it, which changes it for every thread of the process meanwhile): the temporary file is
//! created with mode 0666 and the kernel applies the umask to it, exactly as for any file the
//! user creates. A path that is a symlink stays one: the link is followed to its final target,
//! and the temporary file is made beside that target and renamed over it.
//!
//! [`DirLock`] is the lock the read–modify–write of the lock and of the deploy records is done
//! under.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Symlinks followed before giving up, as the kernel does (`MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// Replaces the file at `path` (or the file it links to) with `bytes`; the temporary file's name
/// starts with `prefix`.
pub fn replace(path: &Path, bytes: &[u8], prefix: &str) -> io::Result<()> {
    let target = final_target(path)?;
    let dir = parent(&target);
    let mode = match std::fs::metadata(&target) {
        Ok(meta) => Some(meta.permissions().mode() & 0o777),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    if let Some(mode) = mode {
        // fchmod is not masked by the umask: the replaced file's mode, exactly.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Where writing `path` lands: `path` itself, or the final target of the symlinks it is (a
/// relative target is relative to its link's directory). A target that does not exist yet is
/// where the file is created.
pub fn final_target(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                current = if target.is_absolute() {
                    target
                } else {
                    parent(&current).join(target)
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from(rustix::io::Errno::LOOP))
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// An exclusive `flock` on a directory, released on drop — and by the kernel when the process
/// dies, so a killed run never leaves a stale lock. A directory rather than a side file, so that
/// locking adds no file beside the cookbook (none can enter a build context).
pub struct DirLock(std::fs::File);

impl DirLock {
    /// Waits for the lock on `dir`.
    pub fn acquire(dir: &Path) -> io::Result<DirLock> {
        let file = std::fs::File::open(dir)?;
        // Through the trait: std's inherent `File::lock` is newer than our MSRV.
        fs4::FileExt::lock(&file)?;
        Ok(DirLock(file))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock as well; unlocking first is only explicit.
        let _ = fs4::FileExt::unlock(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_replaced_file_keeps_its_mode_and_a_symlink_stays_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o604)).unwrap();
        replace(&file, b"new", ".f.").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        assert_eq!(mode(&file), 0o604);

        // A chain of two links, one relative and one absolute, into another directory.
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::os::unix::fs::symlink(&file, other.join("abs")).unwrap();
        std::os::unix::fs::symlink("other/abs", dir.path().join("rel")).unwrap();
        replace(&dir.path().join("rel"), b"through", ".f.").unwrap();
        assert!(std::fs::symlink_metadata(dir.path().join("rel"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "through");
        assert_eq!(mode(&file), 0o604);

        // A dangling link: the file is created at its target.
        std::os::unix::fs::symlink("made", dir.path().join("dangling")).unwrap();
        replace(&dir.path().join("dangling"), b"made", ".f.").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("made")).unwrap(),
            "made"
        );

        // A loop is an error, not a hang.
        std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
        let e = replace(&dir.path().join("loop"), b"x", ".f.").unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".f."))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
