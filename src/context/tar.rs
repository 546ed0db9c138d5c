//! Writes a context as a deterministic tar stream.
//!
//! Entries in listing order (sorted by path bytes); owner 0:0 with empty user and group names;
//! one fixed mtime (0, the epoch) for every entry; modes normalized to 0644/0755 (0777 for
//! symlinks); GNU headers, so long paths and long link targets are written with GNU long-name
//! records; nothing else (no atime/ctime, no PAX records, no directories). File contents are
//! streamed from disk and checked against the digest and size the context was hashed with, so a
//! file changed after hashing fails the write instead of producing a tar that its hash misnames.

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{ContextError, Entry, EntryKind, EntrySource};

/// The mtime of every entry.
pub const MTIME: u64 = 0;

fn header(entry: &Entry) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(entry.kind.tar_mode());
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(if entry.kind == EntryKind::Symlink {
        0
    } else {
        entry.size
    });
    h.set_entry_type(if entry.kind == EntryKind::Symlink {
        tar::EntryType::Symlink
    } else {
        tar::EntryType::Regular
    });
    h
}

/// Reads a file while hashing it, refusing a size or digest other than expected. Remembers
/// whether reading failed, so that an error out of the tar builder (which copies this reader
/// into the output) is told apart: reading the source, or writing the tar.
struct Checked<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    failed: bool,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| self.failed = true)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// What `write` calls its output in errors.
const STDOUT: &str = "standard output";

/// Writes the entries as a tar stream to `out` (named "standard output" in errors), flushed.
/// `digests[i]` is the SHA-256 of `entries[i]`.
pub fn write<W: Write>(entries: &[Entry], digests: &[[u8; 32]], out: W) -> Result<W, ContextError> {
    write_named(entries, digests, out, Path::new(STDOUT))
}

/// [`write`] to an output called `name` in errors (a temporary file, say).
pub fn write_named<W: Write>(
    entries: &[Entry],
    digests: &[[u8; 32]],
    out: W,
    name: &Path,
) -> Result<W, ContextError> {
    let mut builder = tar::Builder::new(out);
    let write_err = |source: io::Error| ContextError::Write {
        path: name.to_path_buf(),
        source,
    };
    for (entry, digest) in entries.iter().zip(digests) {
        append_entry(&mut builder, &entry.path, entry, digest, name)?;
    }
    let mut out = builder.into_inner().map_err(write_err)?;
    // A buffered writer dropped unflushed would swallow the last write's error (a full disk).
    out.flush().map_err(write_err)?;
    Ok(out)
}

/// Appends one context entry under the tar path `path`, its contents checked against `digest`.
fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    entry: &Entry,
    digest: &[u8; 32],
    name: &Path,
) -> Result<(), ContextError> {
    let read_err = |path: &Path, source: io::Error| ContextError::Io {
        path: path.to_path_buf(),
        source,
    };
    let write_err = |source: io::Error| ContextError::Write {
        path: name.to_path_buf(),
        source,
    };
    let mut h = header(entry);
    match &entry.source {
        EntrySource::Link(target) => {
            builder
                .append_link(&mut h, path, target)
                .map_err(write_err)?;
        }
        EntrySource::Generated(bytes) => {
            builder
                .append_data(&mut h, path, &bytes[..])
                .map_err(write_err)?;
        }
        EntrySource::Disk { .. } => {
            let disk = &entry.disk_path().expect("a file on disk");
            let file = super::open_regular(disk)?;
            let mut reader = Checked {
                inner: file.take(entry.size),
                hasher: Sha256::new(),
                read: 0,
                failed: false,
            };
            if let Err(e) = builder.append_data(&mut h, path, &mut reader) {
                return Err(if reader.failed {
                    read_err(disk, e)
                } else {
                    write_err(e)
                });
            }
            let mut probe = [0u8; 1];
            let longer = reader
                .inner
                .into_inner()
                .read(&mut probe)
                .map_err(|e| read_err(disk, e))?
                > 0;
            if reader.read != entry.size
                || longer
                || <[u8; 32]>::from(reader.hasher.finalize()) != *digest
            {
                return Err(ContextError::Changed { path: disk.clone() });
            }
        }
    }
    Ok(())
}

/// Writes the one layer of an engine-less build ([`super::assembly`]): `items` in order, each a
/// directory (with the mode and owner the item says) or a context entry under its path in the image, written and
/// checked as [`write`] does. The result is re-encoded by `image::normalize_layer` like every
/// layer cookbook publishes; this writer only has to be right, not canonical.
pub fn write_layer<W: Write>(
    items: &[super::assembly::LayerItem],
    entries: &[Entry],
    digests: &[[u8; 32]],
    out: W,
    name: &Path,
) -> Result<W, ContextError> {
    use super::assembly::LayerItem;
    let write_err = |source: io::Error| ContextError::Write {
        path: name.to_path_buf(),
        source,
    };
    let mut builder = tar::Builder::new(out);
    for item in items {
        match item {
            LayerItem::Dir {
                path,
                mode,
                uid,
                gid,
            } => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_gid(*gid);
                h.set_mtime(MTIME);
                h.set_size(0);
                builder
                    .append_data(&mut h, path, io::empty())
                    .map_err(write_err)?;
            }
            LayerItem::Entry { path, index } => {
                append_entry(&mut builder, path, &entries[*index], &digests[*index], name)?;
            }
        }
    }
    let mut out = builder.into_inner().map_err(write_err)?;
    out.flush().map_err(write_err)?;
    Ok(out)
}

/// Writes the tar to `dest` through a temporary file in the same directory, then renames it into
/// place: a reader never sees a half-written context.
///
/// `durable` also flushes the file to disk before the rename: wanted for a context a user asked
/// to keep, not for the throwaway one `apply` streams to the engine and deletes (where the fsync
/// of a large context was a measurable part of the build; see docs/BENCHMARKS.md).
///
/// A `dest` that exists and is not a regular file or a directory (a character device such as
/// `/dev/null`, a FIFO) is written into, as `tar -f` does: renaming over it would replace the
/// device node itself.
pub fn write_file(
    entries: &[Entry],
    digests: &[[u8; 32]],
    dest: &Path,
    durable: bool,
) -> Result<(), ContextError> {
    let io_err = |source: io::Error| ContextError::Write {
        path: dest.to_path_buf(),
        source,
    };
    if let Ok(meta) = std::fs::metadata(dest) {
        if !meta.is_file() && !meta.is_dir() {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(dest)
                .map_err(io_err)?;
            let writer = io::BufWriter::with_capacity(1 << 20, file);
            write_named(entries, digests, writer, dest)?;
            return Ok(());
        }
    }
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".cookbook-context-")
        .tempfile_in(dir)
        .map_err(io_err)?;
    let writer = io::BufWriter::with_capacity(1 << 20, tmp);
    let writer = write_named(entries, digests, writer, dest)?;
    let tmp = writer.into_inner().map_err(|e| io_err(e.into_error()))?;
    if durable {
        tmp.as_file().sync_all().map_err(io_err)?;
    }
    tmp.persist(dest).map_err(|e| io_err(e.error))?;
    Ok(())
}
