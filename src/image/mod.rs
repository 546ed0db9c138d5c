//! Reproducible images: rewrite an image the engine built into one whose digest depends only on
//! what is in it, as pure functions — image in, image out (go-containerregistry's `mutate`
//! package is the model). Nothing here talks to the engine or a registry: the caller exports the
//! image (bollard `export_image`, i.e. `docker save`), hands the stream to [`normalize`], and
//! pushes or loads what comes out.
//!
//! Place in the pipeline: after the engine built an image, before it is published. The result is
//! an OCI image layout directory ([`NormalizedImage`]) holding every blob and the manifest, ready
//! for a registry push, and [`NormalizedImage::write_docker_archive`] turns it into a
//! `docker load`-able tar, after which the engine's image id is [`NormalizedImage::config_digest`].
//! [`diff`] names the first difference between two normalized images (for `verify --rebuild`).
//!
//! What is normalized, and why (docs/REPRODUCIBILITY.md, "Reproducible images", says it for users):
//!
//! | item                                   | rewritten to            | why                                |
//! |----------------------------------------|-------------------------|------------------------------------|
//! | each entry's mtime (non-base layers)   | 0                       | RUN/COPY stamp the wall clock      |
//! | user/group names                       | empty                   | the numeric ids are what count     |
//! | PAX records other than path, linkpath, size, uid, gid, `SCHILY.xattr.security.capability` | dropped | atime/ctime are clocks; other xattrs are the build host's |
//! | tar header format                      | ustar + PAX for what does not fit | one encoding per content  |
//! | config `created`, `history[].created`  | `1970-01-01T00:00:00Z`  | wall clock                         |
//! | `container`, `container_config`, `docker_version`, `config.Hostname`, `config.Image` | removed | build container, daemon, parent id |
//! | config serialization                   | RFC 8785 (JCS)          | sorted keys, one number format     |
//! | `rootfs.diff_ids`                      | recomputed              | the layers changed                 |
//!
//! Kept: entry order, paths, entry types, mode bits, uid/gid, link targets, device numbers,
//! contents, the `security.capability` xattr. Base layers (the leading layers whose diff_ids are the
//! base image's) are carried byte for byte: they belong to whoever built the base.
//!
//! Who uses it:
//! - `apply` (`apply/publish.rs`): after each build, the export streams into [`normalize`] on a
//!   blocking thread with the base's diff_ids; the result is loaded back into the engine (so the
//!   image id is [`NormalizedImage::config_digest`] and a `container:` child builds FROM it) and
//!   its blobs and manifest are published through the registry edge; the lock records
//!   [`NormalizedImage::manifest_digest`];
//! - `verify --rebuild` (`verify/rebuild.rs`): normalizes a cache-less rebuild, opens the
//!   published image and reports [`diff`];
//! - engine-less builds ([`assemble`]): a base image's layers plus one layer re-encoded by
//!   [`normalize_layer`] and a config through [`normalize_config`], so both paths give the same
//!   bytes.
//!
//! Files: `normalize` drives a normalization (export → spool → layers → layout); `layer` and
//! `config` rewrite one layer and one config; `layout` is the OCI layout on disk (blobs, manifest,
//! index, reading one back); `docker_archive` writes a layout as a `docker load`-able tar;
//! `export` finds the image in a `docker save` spool; `hashing` digests streams on the way.
//!
//! Invariants:
//! - streaming: a layer is never held in memory. A legacy layout's `layer.tar` (Docker 20.10's
//!   `docker save`) is normalized as the export streams in, its raw bytes spooled beside in the
//!   same pass (it is only known at the end, from `manifest.json`, whether it is a base layer to
//!   carry as it is); other layouts are spooled to files, then each layer is read once. Digests
//!   are computed on the fly (`hashing`);
//! - the output is a function of the input's contents only: no clock, host, path or map order
//!   reaches a byte of it (BTreeMap / JCS everywhere);
//! - every digest the engine's export states (the config's diff_ids) is checked against the bytes.

pub mod assemble;
mod config;
mod diff;
mod docker_archive;
mod export;
mod hashing;
pub mod labels;
mod layer;
mod layout;
mod normalize;

use std::path::PathBuf;

pub use config::normalize_config;
pub use diff::{diff, EntryAspect, ImageDifference, PathDifference};
pub use labels::{LABEL_CONTAINER, LABEL_INPUT_HASH, LABEL_PROJECT};
pub use layer::{normalize_layer, LayerSummary};
pub use layout::{create_blobs_dir, LayerInfo, NormalizedImage};

/// The fixed time every normalized timestamp is set to (the Unix epoch, as ko and Jib do).
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// How non-base layers are stored in the registry. Measured in docs/BENCHMARKS.md ("Reproducible
/// images"): uncompressed is the default because it pushed fastest to the registry end to end
/// (gzip's compression time is larger than the upload time it saves on a fast link), it keeps
/// normalization near the speed of `docker save | sha256sum`, and its digests depend on the
/// layer's contents alone — not on a compressor's version, so a Cargo.lock update can never
/// move a published digest. The price is 1.8–2.8× the registry bytes. Both choices are pinned by
/// golden vectors in tests/it/normalize.rs; for gzip the compressor (flate2 on miniz_oxide, level
/// [`GZIP_LEVEL`]) is pinned in Cargo.lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Layers as plain tars: the blob digest is the diff_id.
    #[default]
    None,
    /// Layers gzip-compressed (header with mtime 0, no name, OS 255).
    Gzip,
}

/// The deflate level for [`Compression::Gzip`] (zlib's default trade-off).
pub const GZIP_LEVEL: u32 = 6;

/// What [`normalize`] needs besides the export.
#[derive(Debug, Clone, Default)]
pub struct NormalizeOptions {
    /// The base image's diff_ids (`sha256:…`), in order. The exported image's leading layers
    /// with exactly these diff_ids are carried unchanged; every later layer is normalized.
    /// Empty for an image `FROM scratch`.
    pub base_diff_ids: Vec<String>,
    pub compression: Compression,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read the exported image: {0}")]
    Export(#[source] std::io::Error),
    /// The export is readable but is not one image in a layout this module knows.
    #[error("the exported image is not usable: {0}")]
    Layout(String),
    #[error("the exported image's {what} is not valid JSON: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    /// A layer's bytes do not hash to the diff_id its config states.
    #[error(
        "layer {index} of the exported image hashes to {actual}, but its config says {expected}"
    )]
    DiffIdMismatch {
        index: usize,
        expected: String,
        actual: String,
    },
    /// The image does not start with the base image's layers.
    #[error("the image does not start with its base image's layers: layer {index} is {actual}, the base's is {expected}")]
    BaseMismatch {
        index: usize,
        expected: String,
        actual: String,
    },
    #[error("cannot read layer {index} as a tar: {source}")]
    Layer {
        index: usize,
        source: std::io::Error,
    },
    #[error("layer {index} is compressed with {format}, which cannot be read")]
    UnsupportedCompression { index: usize, format: &'static str },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the normalized image at {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
}

/// The diff_ids an image config states, in order (`sha256:…`).
pub fn config_diff_ids(raw: &[u8]) -> Result<Vec<String>, ImageError> {
    config::diff_ids(raw)
}

/// Normalizes the image in `export` (a `docker save` / `export_image` tar stream, legacy or OCI
/// layout, holding exactly one image) into an OCI image layout written in `out` (created if
/// missing; it must not hold another image). Scratch files go to a directory inside `out` that is
/// removed before returning.
pub fn normalize(
    export: impl std::io::Read,
    options: &NormalizeOptions,
    out: &std::path::Path,
) -> Result<NormalizedImage, ImageError> {
    normalize::normalize_into(export, options, out)
}
