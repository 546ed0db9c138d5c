//! The normalized image as an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`): reading one back, writing blobs, layers, the manifest and the index.
//! [`super::normalize`] produces one from an export, [`super::assemble`] from a base and a
//! layer, and [`super::docker_archive`] turns one into a `docker load`-able tar.
//!
//! Every blob is written to a temp file in `blobs/sha256/` while its digest is computed, then
//! renamed to its digest: a layer is never in memory, and a half-written blob never has a name.
//! The manifest and `index.json` are JCS like the config, so their bytes are fixed by their
//! contents.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use oci_spec::image::{
    Descriptor, Digest, ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder,
    MediaType,
};
use tempfile::NamedTempFile;

use super::hashing::HashingWriter;
use super::{config, layer, Compression, ImageError, GZIP_LEVEL};

/// One layer of a normalized image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The blob's digest (the diff_id when uncompressed).
    pub digest: Digest,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    pub media_type: MediaType,
}

/// A normalized image on disk, as an OCI image layout.
#[derive(Debug, Clone)]
pub struct NormalizedImage {
    dir: PathBuf,
    manifest: Vec<u8>,
    manifest_digest: Digest,
    config: Vec<u8>,
    config_digest: Digest,
    layers: Vec<LayerInfo>,
}

impl NormalizedImage {
    /// The OCI image layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest's digest: what a registry names the image by, and the lock records.
    pub fn manifest_digest(&self) -> &Digest {
        &self.manifest_digest
    }

    /// The config's digest: the image id the engine gives the image once loaded.
    pub fn config_digest(&self) -> &Digest {
        &self.config_digest
    }

    /// The manifest's exact bytes (`application/vnd.oci.image.manifest.v1+json`).
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// The config's exact bytes (`application/vnd.oci.image.config.v1+json`).
    pub fn config(&self) -> &[u8] {
        &self.config
    }

    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    /// Where the blob `digest` is stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_file(&self.dir, digest)
    }

    /// Reads a normalized image back from its layout directory (one image in `index.json`).
    pub fn open(dir: &Path) -> Result<NormalizedImage, ImageError> {
        let bad = |message: String| ImageError::Read {
            path: dir.to_owned(),
            message,
        };
        let index: ImageIndex = ImageIndex::from_file(dir.join("index.json"))
            .map_err(|e| bad(format!("index.json: {e}")))?;
        let [descriptor] = <[Descriptor; 1]>::try_from(index.manifests().clone())
            .map_err(|all| bad(format!("index.json lists {} manifests", all.len())))?;
        let manifest_digest = descriptor.digest().clone();
        let manifest = fs::read(blob_file(dir, &manifest_digest))
            .map_err(|e| bad(format!("manifest blob: {e}")))?;
        let parsed = ImageManifest::from_reader(manifest.as_slice())
            .map_err(|e| bad(format!("manifest: {e}")))?;
        let config_digest = parsed.config().digest().clone();
        let config = fs::read(blob_file(dir, &config_digest))
            .map_err(|e| bad(format!("config blob: {e}")))?;
        let diff_ids = config::diff_ids(&config)?;
        if diff_ids.len() != parsed.layers().len() {
            return Err(bad(format!(
                "the manifest lists {} layers, the config {} diff_ids",
                parsed.layers().len(),
                diff_ids.len()
            )));
        }
        let layers = parsed
            .layers()
            .iter()
            .zip(diff_ids)
            .map(|(layer, diff_id)| {
                Ok(LayerInfo {
                    digest: layer.digest().clone(),
                    diff_id: parse_digest(&diff_id)?,
                    size: layer.size(),
                    media_type: layer.media_type().clone(),
                })
            })
            .collect::<Result<_, ImageError>>()?;
        Ok(NormalizedImage {
            dir: dir.to_owned(),
            manifest,
            manifest_digest,
            config,
            config_digest,
            layers,
        })
    }

    /// Opens layer `index`'s (0-based, base layers included) uncompressed tar stream.
    pub fn open_layer(&self, index: usize) -> Result<Box<dyn Read>, ImageError> {
        let layer = self.layers.get(index).ok_or_else(|| ImageError::Read {
            path: self.dir.clone(),
            message: format!("no layer {index}: the image has {}", self.layers.len()),
        })?;
        let path = self.blob_path(&layer.digest);
        let file = File::open(&path).map_err(|e| ImageError::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
        decompressing(file).map_err(|source| ImageError::Layer { index, source })
    }
}

/// The `oci-layout` file's contents (image-spec v1.0.0 layout).
pub(super) const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Creates the `blobs/sha256` directory of the OCI layout `out` (and `out`), and returns it.
pub fn create_blobs_dir(out: &Path) -> Result<PathBuf, ImageError> {
    let blobs = out.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|source| ImageError::Write {
        path: blobs.clone(),
        source,
    })?;
    Ok(blobs)
}

fn blob_file(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm().as_ref())
        .join(digest.digest())
}

pub(super) fn parse_digest(text: &str) -> Result<Digest, ImageError> {
    text.parse()
        .map_err(|e| ImageError::Layout(format!("`{text}` is not a digest: {e}")))
}

/// `reader` decompressed when it starts with the gzip magic; plain tars pass through. zstd
/// (which the containerd image store may hold) is named rather than misread as a tar.
pub(crate) fn decompressing<R: Read + 'static>(reader: R) -> io::Result<Box<dyn Read>> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let head = io::BufRead::fill_buf(&mut reader)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "zstd-compressed layers are not supported",
        ))
    } else {
        Ok(Box::new(reader))
    }
}

/// Where a blob being written goes, hashing it on the way.
pub(super) struct BlobWriter {
    file: HashingWriter<BufWriter<NamedTempFile>>,
}

impl BlobWriter {
    pub(super) fn create(blobs: &Path) -> Result<BlobWriter, ImageError> {
        let file = NamedTempFile::new_in(blobs).map_err(|source| ImageError::Write {
            path: blobs.to_owned(),
            source,
        })?;
        Ok(BlobWriter {
            file: HashingWriter::new(BufWriter::with_capacity(256 * 1024, file)),
        })
    }

    /// Flushes the blob without naming it: its file, digest and size.
    pub(super) fn finish(self) -> io::Result<(NamedTempFile, String, u64)> {
        let (buffered, digest, size) = self.file.finish();
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        Ok((file, digest, size))
    }

    /// Flushes the blob and names it by its digest; returns the digest and size.
    pub(super) fn persist(self, blobs: &Path) -> Result<(Digest, u64), ImageError> {
        let (buffered, digest, size) = self.file.finish();
        let write_err = |source| ImageError::Write {
            path: blobs.to_owned(),
            source,
        };
        let file = buffered
            .into_inner()
            .map_err(|e| write_err(e.into_error()))?;
        let digest = parse_digest(&digest)?;
        let path = blobs.join(digest.digest());
        file.persist(&path).map_err(|e| write_err(e.error))?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Writes `bytes` as a blob and returns its descriptor fields.
fn write_blob(blobs: &Path, bytes: &[u8]) -> Result<(Digest, u64), ImageError> {
    let mut blob = BlobWriter::create(blobs)?;
    blob.write_all(bytes).map_err(|source| ImageError::Write {
        path: blobs.to_owned(),
        source,
    })?;
    blob.persist(blobs)
}

/// Writes the rest of an OCI image layout in `out` whose layers' blobs are written (or, for a
/// base carried from a registry, known by digest): the config blob (`config`, canonical
/// already), the manifest, `index.json` and `oci-layout`.
pub(crate) fn write_image(
    out: &Path,
    config: Vec<u8>,
    layers: Vec<LayerInfo>,
) -> Result<NormalizedImage, ImageError> {
    let blobs = create_blobs_dir(out)?;
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ImageError::Write { path, source }
    };
    let (config_digest, config_size) = write_blob(&blobs, &config)?;
    let descriptor =
        |media: MediaType, size: u64, digest: &Digest| Descriptor::new(media, size, digest.clone());
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            config_size,
            &config_digest,
        ))
        .layers(
            layers
                .iter()
                .map(|l| descriptor(l.media_type.clone(), l.size, &l.digest))
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(|e| ImageError::Layout(format!("manifest: {e}")))?;
    let manifest = canonical(&manifest)?;
    let (manifest_digest, manifest_size) = write_blob(&blobs, &manifest)?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![descriptor(
            MediaType::ImageManifest,
            manifest_size,
            &manifest_digest,
        )])
        .build()
        .map_err(|e| ImageError::Layout(format!("index: {e}")))?;
    let index_path = out.join("index.json");
    fs::write(&index_path, canonical(&index)?).map_err(write_err(&index_path))?;
    let layout_path = out.join("oci-layout");
    fs::write(&layout_path, OCI_LAYOUT).map_err(write_err(&layout_path))?;

    Ok(NormalizedImage {
        dir: out.to_owned(),
        manifest,
        manifest_digest,
        config,
        config_digest,
        layers,
    })
}

pub(super) fn layer_media_type(compression: Compression) -> MediaType {
    match compression {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
    }
}

/// Normalizes the layer tar `input` (layer `index` of its image) into a blob in `blobs`,
/// compressed as `compression` says; returns the input (read to the end of its archive) and the
/// layer's descriptor.
pub(crate) fn write_normalized_layer<R: Read>(
    index: usize,
    input: R,
    blobs: &Path,
    compression: Compression,
) -> Result<(R, LayerInfo), ImageError> {
    let layer_err = |source| ImageError::Layer { index, source };
    let blob = BlobWriter::create(blobs)?;
    let (input, blob, diff_id, media_type) = match compression {
        Compression::None => {
            let (input, blob, _) =
                layer::normalize_layer(input, HashingWriter::new(blob)).map_err(layer_err)?;
            let (blob, diff_id, _) = blob.finish();
            (input, blob, diff_id, MediaType::ImageLayer)
        }
        Compression::Gzip => {
            let gzip = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(blob, flate2::Compression::new(GZIP_LEVEL));
            let (input, tar, _) =
                layer::normalize_layer(input, HashingWriter::new(gzip)).map_err(layer_err)?;
            let (gzip, diff_id, _) = tar.finish();
            let blob = GzEncoder::finish(gzip).map_err(layer_err)?;
            (input, blob, diff_id, MediaType::ImageLayerGzip)
        }
    };
    let (digest, size) = blob.persist(blobs)?;
    Ok((
        input,
        LayerInfo {
            digest,
            diff_id: parse_digest(&diff_id)?,
            size,
            media_type,
        },
    ))
}

fn canonical(value: &impl serde::Serialize) -> Result<Vec<u8>, ImageError> {
    serde_json_canonicalizer::to_vec(value).map_err(|source| ImageError::Json {
        what: "manifest",
        source,
    })
}
