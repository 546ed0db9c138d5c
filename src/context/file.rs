//! Reading a small input file from a tree that may be hostile: the cookbook, its lock, a
//! `.dockerignore`.
//!
//! `std::fs::read` trusts the path: a file linked to `/dev/zero` is read until memory runs out,
//! a FIFO blocks the read forever, a 5 GiB file is read whole. [`read_regular`] opens without
//! blocking (so that even the open of a FIFO returns), takes only a regular file, and reads at
//! most its cap, refusing a file past it — every caller names its cap and why.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A FIFO, a device, a directory: not input a cookbook can take (exit code 2).
    #[error("not a regular file")]
    NotRegular,
    #[error("larger than {} MiB", max >> 20)]
    TooLarge { max: u64 },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads the regular file at `path`, following links (as an editor or the docker CLI does),
/// `None` when there is none; at most `max` bytes, a larger file refused.
pub fn read_regular(path: &Path, max: u64) -> Result<Option<Vec<u8>>, FileError> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !file.metadata()?.is_file() {
        return Err(FileError::NotRegular);
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(FileError::TooLarge { max });
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap().unwrap(), b"12345");
        assert!(matches!(
            read_regular(&file, 4),
            Err(FileError::TooLarge { max: 4 })
        ));
        assert!(read_regular(&dir.path().join("none"), 5).unwrap().is_none());
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(read_regular(&zero, 5), Err(FileError::NotRegular)));
        assert!(matches!(
            read_regular(dir.path(), 5),
            Err(FileError::NotRegular)
        ));
    }
}
