//! One layer tar in, its normalized tar out, streaming entry by entry.
//!
//! Every entry is written afresh rather than patched in place: its header is rebuilt from what
//! the entry *is* (path, type, mode, ids, link target, device numbers, size) so the same content
//! gives the same bytes whichever tar writer produced the input (Go's PAX headers, GNU long-name
//! entries, ustar prefixes all come out one way). The encoding:
//! - a ustar header, mtime 0, user and group names empty;
//! - a path or link target longer than the header's 100 bytes goes into a PAX `path` / `linkpath`
//!   record (never the ustar prefix field nor a GNU `././@LongLink` entry: one encoding only), with
//!   the header field left empty;
//! - uid/gid above the 7 octal digits of a header field and sizes of 8 GiB or more go into PAX
//!   `uid`/`gid`/`size` records;
//! - the only other record kept is `SCHILY.xattr.security.capability` (file capabilities change
//!   what a binary may do); PAX records are written sorted by key;
//! - GNU sparse files become regular files holding their expanded data; global PAX headers
//!   (type `g`, which carry comments and times) are dropped.
//!
//! The tar crate reads the input (it resolves PAX and GNU long names) and writes the PAX records;
//! the header fields are set by hand only where the crate's `set_path` would pick the prefix or a
//! GNU extension.

use std::io::{self, Read, Write};

use tar::{EntryType, Header};

/// The one xattr kept: file capabilities (`setcap`) are part of what a binary is.
const CAPABILITY_XATTR: &str = "SCHILY.xattr.security.capability";

/// The largest value a 7-digit octal header field (uid, gid) holds.
const MAX_OCTAL_ID: u64 = 0o7_777_777;
/// The largest size an 11-digit octal size field holds.
const MAX_OCTAL_SIZE: u64 = 0o77_777_777_777;

/// Counts of what a normalization changed, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerSummary {
    pub entries: u64,
    /// PAX records dropped (atime, ctime, mtime, other xattrs, names, comments…).
    pub dropped_records: u64,
}

/// Reads the layer tar `input` and writes its normalized form to `output` (see the module
/// header). Returns the writer and what was done. The input's trailing bytes after the
/// end-of-archive marker are not read: a caller that hashes the input finishes reading it.
pub fn normalize_layer<R: Read, W: Write>(input: R, output: W) -> io::Result<(R, W, LayerSummary)> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(output);
    let mut summary = LayerSummary::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            summary.dropped_records += 1;
            continue;
        }
        let kind = match kind {
            EntryType::GNUSparse => EntryType::Regular,
            other => other,
        };
        let path = entry.path_bytes().into_owned();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let size = entry.size();
        let original = entry.header().clone();
        let (ids, mut kept) = kept_records(&mut entry, &original, &mut summary)?;
        let header = normalized_header(kind, &original, ids, size, path, link, &mut kept)?;

        kept.sort();
        builder.append_pax_extensions(kept.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        builder.append(&header, &mut entry)?;
        summary.entries += 1;
    }
    builder.finish()?;
    let output = builder.into_inner()?;
    Ok((archive.into_inner(), output, summary))
}

/// PAX records to write before an entry: key, value.
type PaxRecords = Vec<(String, Vec<u8>)>;

/// The entry's owner ids (its PAX `uid`/`gid` when it has them) and the PAX records kept
/// (the capability xattr); the other records are counted as dropped.
fn kept_records<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    original: &Header,
    summary: &mut LayerSummary,
) -> io::Result<((u64, u64), PaxRecords)> {
    let mut uid = original.uid()?;
    let mut gid = original.gid()?;
    let mut kept = PaxRecords::new();
    if let Some(records) = entry.pax_extensions()? {
        for record in records {
            let record = record?;
            match record.key_bytes() {
                // Resolved by the tar crate into path_bytes, link_name_bytes and size;
                // written back below only when they do not fit the header.
                b"path" | b"linkpath" | b"size" => {}
                b"uid" => uid = pax_number(record.value_bytes())?,
                b"gid" => gid = pax_number(record.value_bytes())?,
                key if key == CAPABILITY_XATTR.as_bytes() => {
                    kept.push((CAPABILITY_XATTR.to_owned(), record.value_bytes().to_vec()))
                }
                _ => summary.dropped_records += 1,
            }
        }
    }
    Ok(((uid, gid), kept))
}

/// The one ustar header an entry is written with: zero mtime, no owner names; a field that does
/// not fit goes to a PAX record in `kept`.
fn normalized_header(
    kind: EntryType,
    original: &Header,
    (uid, gid): (u64, u64),
    size: u64,
    path: Vec<u8>,
    link: Option<Vec<u8>>,
    kept: &mut PaxRecords,
) -> io::Result<Header> {
    let mut header = Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(original.mode()?);
    header.set_mtime(0);
    if uid <= MAX_OCTAL_ID {
        header.set_uid(uid);
    } else {
        header.set_uid(0);
        kept.push(("uid".to_owned(), uid.to_string().into_bytes()));
    }
    if gid <= MAX_OCTAL_ID {
        header.set_gid(gid);
    } else {
        header.set_gid(0);
        kept.push(("gid".to_owned(), gid.to_string().into_bytes()));
    }
    if size <= MAX_OCTAL_SIZE {
        header.set_size(size);
    } else {
        header.set_size(0);
        kept.push(("size".to_owned(), size.to_string().into_bytes()));
    }
    let fields = header.as_ustar_mut().expect("a ustar header");
    if path.len() <= fields.name.len() {
        fields.name[..path.len()].copy_from_slice(&path);
    } else {
        kept.push(("path".to_owned(), path));
    }
    if let Some(link) = link {
        if link.len() <= fields.linkname.len() {
            fields.linkname[..link.len()].copy_from_slice(&link);
        } else {
            kept.push(("linkpath".to_owned(), link));
        }
    }
    if matches!(kind, EntryType::Char | EntryType::Block) {
        header.set_device_major(original.device_major()?.unwrap_or(0))?;
        header.set_device_minor(original.device_minor()?.unwrap_or(0))?;
    }
    header.set_cksum();
    Ok(header)
}

/// A PAX numeric record (`uid`, `gid`): decimal digits.
fn pax_number(value: &[u8]) -> io::Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "PAX numeric record `{}` is not a number",
                    String::from_utf8_lossy(value)
                ),
            )
        })
}
