//! Why two normalized images differ: the first differing layer, and inside it the first
//! differing paths — what `verify --rebuild` shows a release engineer (a RUN step that writes the
//! time differs in that file's content; a package manager's database in its own file).
//!
//! A layer is summarized in one streaming pass (per path: type, mode, owner, link target, content
//! digest, capability xattr); only these summaries are held, never file contents.

use std::collections::BTreeMap;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use super::{ImageError, NormalizedImage};

/// What differs about one path between the two layers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryAspect {
    /// Only in the first image's layer.
    OnlyInLeft,
    /// Only in the second image's layer.
    OnlyInRight,
    /// Regular file, directory, symlink… (the tar type flag).
    Kind {
        left: char,
        right: char,
    },
    Content,
    Mode {
        left: u32,
        right: u32,
    },
    Owner {
        left: (u64, u64),
        right: (u64, u64),
    },
    LinkTarget {
        left: String,
        right: String,
    },
    Capability,
}

/// One path that differs, with every aspect that does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDifference {
    pub path: String,
    pub aspects: Vec<EntryAspect>,
}

/// The first difference between two normalized images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageDifference {
    /// The images have different numbers of layers; the first `common` are identical.
    LayerCount {
        left: usize,
        right: usize,
        common: usize,
    },
    /// Layer `index` (0-based, base layers included) differs; `paths` lists the first differing
    /// paths in the first image's entry order, then those only in the second image.
    Layer {
        index: usize,
        left_diff_id: String,
        right_diff_id: String,
        paths: Vec<PathDifference>,
    },
    /// Every layer is identical but the configs differ (environment, command, labels…).
    Config,
    /// Same config and layers, different manifests (compression or media types).
    Manifest,
}

/// What one path in a layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryFacts {
    kind: u8,
    mode: u32,
    owner: (u64, u64),
    link: Option<Vec<u8>>,
    content: [u8; 32],
    capability: Option<Vec<u8>>,
}

/// The first difference between `left` and `right`, or `None` when their manifests are the
/// same; at most `max_paths` paths are listed for a differing layer.
pub fn diff(
    left: &NormalizedImage,
    right: &NormalizedImage,
    max_paths: usize,
) -> Result<Option<ImageDifference>, ImageError> {
    if left.manifest_digest() == right.manifest_digest() {
        return Ok(None);
    }
    let common = left.layers().len().min(right.layers().len());
    for index in 0..common {
        let (l, r) = (&left.layers()[index], &right.layers()[index]);
        if l.diff_id == r.diff_id {
            continue;
        }
        let summarize = |image: &NormalizedImage| {
            summarize(image.open_layer(index)?)
                .map_err(|source| ImageError::Layer { index, source })
        };
        let (left_entries, right_entries) = (summarize(left)?, summarize(right)?);
        return Ok(Some(ImageDifference::Layer {
            index,
            left_diff_id: l.diff_id.to_string(),
            right_diff_id: r.diff_id.to_string(),
            paths: compare(&left_entries, &right_entries, max_paths),
        }));
    }
    if left.layers().len() != right.layers().len() {
        return Ok(Some(ImageDifference::LayerCount {
            left: left.layers().len(),
            right: right.layers().len(),
            common,
        }));
    }
    if left.config_digest() != right.config_digest() {
        return Ok(Some(ImageDifference::Config));
    }
    Ok(Some(ImageDifference::Manifest))
}

/// Each path of the layer tar `input` with its facts, in entry order (a path written twice keeps
/// its last facts at its first position, as extracting the layer would leave it).
fn summarize(input: impl Read) -> io::Result<Vec<(Vec<u8>, EntryFacts)>> {
    let mut archive = tar::Archive::new(input);
    let mut entries: Vec<(Vec<u8>, EntryFacts)> = Vec::new();
    let mut position: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header().clone();
        let path = entry.path_bytes().into_owned();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let mut capability = None;
        let mut owner = (header.uid()?, header.gid()?);
        if let Some(records) = entry.pax_extensions()? {
            for record in records {
                let record = record?;
                let number = || record.value().ok().and_then(|v| v.parse().ok());
                match record.key_bytes() {
                    b"SCHILY.xattr.security.capability" => {
                        capability = Some(record.value_bytes().to_vec())
                    }
                    b"uid" => owner.0 = number().unwrap_or(owner.0),
                    b"gid" => owner.1 = number().unwrap_or(owner.1),
                    _ => {}
                }
            }
        }
        let mut hasher = Sha256::new();
        io::copy(&mut entry, &mut hasher)?;
        let facts = EntryFacts {
            kind: header.entry_type().as_byte(),
            mode: header.mode()?,
            owner,
            link,
            content: hasher.finalize().into(),
            capability,
        };
        match position.get(&path) {
            Some(&at) => entries[at].1 = facts,
            None => {
                position.insert(path.clone(), entries.len());
                entries.push((path, facts));
            }
        }
    }
    Ok(entries)
}

fn compare(
    left: &[(Vec<u8>, EntryFacts)],
    right: &[(Vec<u8>, EntryFacts)],
    max_paths: usize,
) -> Vec<PathDifference> {
    let right_by_path: BTreeMap<&[u8], &EntryFacts> =
        right.iter().map(|(p, f)| (p.as_slice(), f)).collect();
    let left_paths: std::collections::BTreeSet<&[u8]> =
        left.iter().map(|(p, _)| p.as_slice()).collect();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut out = Vec::new();
    for (path, l) in left {
        let aspects = match right_by_path.get(path.as_slice()) {
            None => vec![EntryAspect::OnlyInLeft],
            Some(r) => aspects(l, r),
        };
        if !aspects.is_empty() {
            out.push(PathDifference {
                path: text(path),
                aspects,
            });
        }
    }
    for (path, _) in right {
        if !left_paths.contains(path.as_slice()) {
            out.push(PathDifference {
                path: text(path),
                aspects: vec![EntryAspect::OnlyInRight],
            });
        }
    }
    out.truncate(max_paths);
    out
}

fn aspects(l: &EntryFacts, r: &EntryFacts) -> Vec<EntryAspect> {
    let mut out = Vec::new();
    if l.kind != r.kind {
        out.push(EntryAspect::Kind {
            left: l.kind as char,
            right: r.kind as char,
        });
    }
    if l.content != r.content {
        out.push(EntryAspect::Content);
    }
    if l.mode != r.mode {
        out.push(EntryAspect::Mode {
            left: l.mode,
            right: r.mode,
        });
    }
    if l.owner != r.owner {
        out.push(EntryAspect::Owner {
            left: l.owner,
            right: r.owner,
        });
    }
    if l.link != r.link {
        let text = |link: &Option<Vec<u8>>| {
            link.as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        out.push(EntryAspect::LinkTarget {
            left: text(&l.link),
            right: text(&r.link),
        });
    }
    if l.capability != r.capability {
        out.push(EntryAspect::Capability);
    }
    out
}
