//! The normalize driver: a `docker save` stream in, an OCI image layout out.
//!
//! One pass over the export: it is unpacked into a spool directory beside the layout, a legacy
//! layout's `layer.tar` normalized as it streams in (see [`Speculative`]); then each layer the
//! export's manifest lists is checked against the config's diff_ids and written once — a base
//! layer carried byte for byte, any other normalized — and the config, manifest and index are
//! written by [`super::layout::write_image`].

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use oci_spec::image::MediaType;
use tempfile::NamedTempFile;

use super::hashing::{HashingReader, HashingWriter};
use super::layout::{
    create_blobs_dir, decompressing, layer_media_type, parse_digest, write_image,
    write_normalized_layer, BlobWriter, LayerInfo, NormalizedImage,
};
use super::{config, export, layer, Compression, ImageError, NormalizeOptions, GZIP_LEVEL};

/// A write error on `path`, for `map_err`.
fn write_err(path: &Path) -> impl FnOnce(io::Error) -> ImageError {
    let path = path.to_owned();
    move |source| ImageError::Write { path, source }
}

/// A layer that does not hash to the diff_id the config states.
fn check_diff_id(index: usize, expected: &str, actual: String) -> Result<(), ImageError> {
    if actual == expected {
        Ok(())
    } else {
        Err(ImageError::DiffIdMismatch {
            index,
            expected: expected.to_owned(),
            actual,
        })
    }
}

pub(crate) fn normalize_into(
    export: impl Read,
    options: &NormalizeOptions,
    out: &Path,
) -> Result<NormalizedImage, ImageError> {
    let blobs = create_blobs_dir(out)?;
    let spool = tempfile::Builder::new()
        .prefix(".export-")
        .tempdir_in(out)
        .map_err(write_err(out))?;
    let mut speculative = unpack(export, spool.path(), &blobs, options.compression)?;
    let exported = export::locate(spool.path())?;
    let raw_config = fs::read(&exported.config).map_err(ImageError::Export)?;
    let stated = stated_diff_ids(&raw_config, exported.layers.len(), options)?;

    let mut writer = LayerWriter {
        blobs: &blobs,
        options,
        stated: &stated,
        done: BTreeMap::new(),
        moved: BTreeMap::new(),
        raw_ids: BTreeMap::new(),
    };
    let mut layers: Vec<LayerInfo> = Vec::with_capacity(stated.len());
    for (index, path) in exported.layers.iter().enumerate() {
        let info = writer.layer(index, path, speculative.remove(path))?;
        layers.push(info);
    }

    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let config = config::normalize_config(&raw_config, &diff_ids)?;
    let image = write_image(out, config, layers)?;
    spool.close().map_err(write_err(out))?;
    Ok(image)
}

/// The config's diff_ids, once checked to be one per exported layer and to start with the
/// base image's.
fn stated_diff_ids(
    raw_config: &[u8],
    layers: usize,
    options: &NormalizeOptions,
) -> Result<Vec<String>, ImageError> {
    let stated = config::diff_ids(raw_config)?;
    if stated.len() != layers {
        return Err(ImageError::Layout(format!(
            "manifest.json lists {} layers, the config {} diff_ids",
            layers,
            stated.len()
        )));
    }
    for (index, expected) in options.base_diff_ids.iter().enumerate() {
        let actual = stated.get(index).map(String::as_str).unwrap_or("(none)");
        if actual != expected {
            return Err(ImageError::BaseMismatch {
                index,
                expected: expected.clone(),
                actual: actual.to_owned(),
            });
        }
    }
    Ok(stated)
}

/// The exported layers being written into `blobs`, in the order the export lists them.
struct LayerWriter<'a> {
    blobs: &'a Path,
    options: &'a NormalizeOptions,
    /// The config's diff_ids, one per listed layer.
    stated: &'a [String],
    /// A layer listed twice (the legacy layout links a repeated layer to its first copy) is
    /// written once: by (spooled file, whether it is a base layer).
    done: BTreeMap<(PathBuf, bool), LayerInfo>,
    /// Spooled layers carried into `blobs` by a rename: where each went.
    moved: BTreeMap<PathBuf, PathBuf>,
    /// What each layer file hashed to as exported (checked against each listing of it).
    raw_ids: BTreeMap<PathBuf, String>,
}

impl LayerWriter<'_> {
    /// Writes listed layer `index`, the spooled file `path` (normalized already when
    /// `speculative` says so).
    fn layer(
        &mut self,
        index: usize,
        path: &Path,
        speculative: Option<Speculative>,
    ) -> Result<LayerInfo, ImageError> {
        let is_base = index < self.options.base_diff_ids.len();
        let key = (path.to_owned(), is_base);
        let info = match (self.done.get(&key), speculative) {
            (Some(info), _) => {
                let read = self.raw_ids.get(path).cloned().unwrap_or_default();
                check_diff_id(index, &self.stated[index], read)?;
                info.clone()
            }
            (None, Some(spec)) => self.speculated(index, path, is_base, spec)?,
            (None, None) => {
                let source = self.moved.get(path).map_or(path, PathBuf::as_path);
                let info = normalize_file(
                    index,
                    source,
                    is_base,
                    &self.stated[index],
                    self.blobs,
                    self.options,
                )?;
                self.raw_ids
                    .insert(path.to_owned(), self.stated[index].clone());
                info
            }
        };
        self.done.insert(key, info.clone());
        Ok(info)
    }

    /// A legacy layer normalized as it streamed in: its raw bytes carried for a base layer,
    /// else its normalized form named.
    fn speculated(
        &mut self,
        index: usize,
        path: &Path,
        is_base: bool,
        spec: Speculative,
    ) -> Result<LayerInfo, ImageError> {
        self.raw_ids
            .insert(path.to_owned(), spec.raw_diff_id.clone());
        check_diff_id(index, &self.stated[index], spec.raw_diff_id.clone())?;
        if is_base {
            // The engine's tar as it is: its digest is its diff_id.
            let digest = parse_digest(&spec.raw_diff_id)?;
            let target = self.blobs.join(digest.digest());
            fs::rename(path, &target).map_err(write_err(&target))?;
            self.moved.insert(path.to_owned(), target.clone());
            let size = fs::metadata(&target).map_err(write_err(&target))?.len();
            return Ok(LayerInfo {
                digest: digest.clone(),
                diff_id: digest,
                size,
                media_type: MediaType::ImageLayer,
            });
        }
        let (file, digest, size, diff_id) = spec
            .normalized
            .map_err(|source| ImageError::Layer { index, source })?;
        let digest = parse_digest(&digest)?;
        let target = self.blobs.join(digest.digest());
        file.persist(&target)
            .map_err(|e| write_err(&target)(e.error))?;
        Ok(LayerInfo {
            digest,
            diff_id: parse_digest(&diff_id)?,
            size,
            media_type: layer_media_type(self.options.compression),
        })
    }
}

/// A legacy layout's layer, normalized while the export streamed in — before it is known
/// whether it is a base layer (then its raw bytes, spooled beside, are carried) or not (then the
/// normalized form is used). Both are written in the one pass over the stream, so the export
/// is never read twice and normalization overlaps the engine's export.
struct Speculative {
    /// The digest of the bytes as exported (the diff_id, if the export is right).
    raw_diff_id: String,
    /// The normalized layer, not yet named: its file, blob digest, size and diff_id. An entry
    /// that does not normalize is only an error if it turns out not to be a base layer.
    normalized: io::Result<(NamedTempFile, String, u64, String)>,
}

/// A reader that copies what it reads into `copy`, remembering the first failure of either side.
struct Tee<'a, R, W> {
    inner: &'a mut R,
    copy: W,
    read_error: Option<io::Error>,
    write_error: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                let again = io::Error::new(e.kind(), e.to_string());
                self.read_error.get_or_insert(e);
                return Err(again);
            }
        };
        if let Err(e) = self.copy.write_all(&buf[..n]) {
            let again = io::Error::new(e.kind(), e.to_string());
            self.write_error.get_or_insert(e);
            return Err(again);
        }
        Ok(n)
    }
}

/// Unpacks the export into `spool`, normalizing each legacy `layer.tar` on the way (see
/// [`Speculative`]); returns those, by their real path in the spool.
fn unpack(
    export: impl Read,
    spool: &Path,
    blobs: &Path,
    compression: Compression,
) -> Result<BTreeMap<PathBuf, Speculative>, ImageError> {
    let mut archive = tar::Archive::new(export);
    let mut speculative = BTreeMap::new();
    for entry in archive.entries().map_err(ImageError::Export)? {
        let mut entry = entry.map_err(ImageError::Export)?;
        let path = entry.path().map_err(ImageError::Export)?.into_owned();
        if !(entry.header().entry_type().is_file() && export::is_legacy_layer(&path)) {
            entry.unpack_in(spool).map_err(ImageError::Export)?;
            continue;
        }
        let target = spool.join(&path);
        let spec = speculate(&mut entry, &target, blobs, compression)?;
        let real = target.canonicalize().map_err(write_err(&target))?;
        speculative.insert(real, spec);
    }
    Ok(speculative)
}

/// Spools the legacy layer `entry` to `target` while normalizing it into a blob in `blobs`.
fn speculate(
    entry: &mut impl Read,
    target: &Path,
    blobs: &Path,
    compression: Compression,
) -> Result<Speculative, ImageError> {
    let write_err = |source| ImageError::Write {
        path: target.to_owned(),
        source,
    };
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).map_err(write_err)?;
    }
    let raw = File::create(target).map_err(write_err)?;
    let mut tee = Tee {
        inner: entry,
        copy: HashingWriter::new(BufWriter::with_capacity(256 * 1024, raw)),
        read_error: None,
        write_error: None,
    };
    let blob = BlobWriter::create(blobs)?;
    let normalized = match compression {
        Compression::None => layer::normalize_layer(&mut tee, HashingWriter::new(blob))
            .map(|(_, tar, _)| tar.finish())
            .map(|(blob, diff_id, _)| (blob, diff_id)),
        Compression::Gzip => {
            let gzip = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(blob, flate2::Compression::new(GZIP_LEVEL));
            layer::normalize_layer(&mut tee, HashingWriter::new(gzip)).and_then(|(_, tar, _)| {
                let (gzip, diff_id, _) = tar.finish();
                Ok((GzEncoder::finish(gzip)?, diff_id))
            })
        }
    };
    // What the tar reader left (the padding after the end-of-archive blocks), or all of the
    // entry after a failure: the raw copy and its digest cover every byte.
    let rest = io::copy(&mut tee, &mut io::sink());
    if let Some(e) = tee.read_error {
        return Err(ImageError::Export(e));
    }
    if let Some(e) = tee.write_error {
        return Err(write_err(e));
    }
    rest.map_err(ImageError::Export)?;
    let (raw, raw_diff_id, _) = tee.copy.finish();
    raw.into_inner().map_err(|e| write_err(e.into_error()))?;
    let normalized = normalized.and_then(|(blob, diff_id)| {
        let (file, digest, size) = blob.finish()?;
        Ok((file, digest, size, diff_id))
    });
    Ok(Speculative {
        raw_diff_id,
        normalized,
    })
}

/// Normalizes (or carries, for a base layer) the layer tar in the file `path`.
fn normalize_file(
    index: usize,
    path: &Path,
    is_base: bool,
    stated: &str,
    blobs: &Path,
    options: &NormalizeOptions,
) -> Result<LayerInfo, ImageError> {
    let layer_err = |source| ImageError::Layer { index, source };
    let file = File::open(path).map_err(ImageError::Export)?;
    let input = HashingReader::new(decompressing(file).map_err(|source| {
        if source.kind() == io::ErrorKind::Unsupported {
            ImageError::UnsupportedCompression {
                index,
                format: "zstd",
            }
        } else {
            layer_err(source)
        }
    })?);
    // Base layers are carried as the engine's uncompressed tar, byte for byte.
    let (input, layer) = if is_base {
        let blob = BlobWriter::create(blobs)?;
        let mut input = input;
        let mut blob = HashingWriter::new(blob);
        io::copy(&mut input, &mut blob).map_err(layer_err)?;
        let (blob, diff_id, _) = blob.finish();
        let (digest, size) = blob.persist(blobs)?;
        let layer = LayerInfo {
            digest,
            diff_id: parse_digest(&diff_id)?,
            size,
            media_type: MediaType::ImageLayer,
        };
        (input, layer)
    } else {
        write_normalized_layer(index, input, blobs, options.compression)?
    };
    let read_diff_id = input.finish().map_err(layer_err)?;
    if read_diff_id != stated {
        return Err(ImageError::DiffIdMismatch {
            index,
            expected: stated.to_owned(),
            actual: read_diff_id,
        });
    }
    Ok(layer)
}
