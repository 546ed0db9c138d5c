//! The normalized image as an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`), how it is produced from an export, and how it becomes a
//! `docker load`-able tar.
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

use super::hashing::{HashingReader, HashingWriter};
use super::{config, export, layer, Compression, ImageError, NormalizeOptions, GZIP_LEVEL};

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

    /// Writes the image as a tar that `docker load` reads (Docker 20.10 reads `manifest.json`;
    /// the same tar is also an OCI layout, as Docker 25 writes it). `repo_tags` (`repo:tag`)
    /// name the loaded image. Entries are in a fixed order with zeroed times and owners, and blobs
    /// are streamed from their files.
    pub fn write_docker_archive<W: Write>(
        &self,
        out: W,
        repo_tags: &[String],
    ) -> Result<W, ImageError> {
        let write_err = |source| ImageError::Write {
            path: PathBuf::from("<docker archive>"),
            source,
        };
        let blob_name = |d: &Digest| format!("blobs/sha256/{}", d.digest());
        let docker_manifest = serde_json::json!([{
            "Config": blob_name(&self.config_digest),
            "RepoTags": repo_tags,
            "Layers": self.layers.iter().map(|l| blob_name(&l.digest)).collect::<Vec<_>>(),
        }]);
        let docker_manifest = serde_json_canonicalizer::to_vec(&docker_manifest)
            .map_err(|e| write_err(io::Error::other(e)))?;
        let index = fs::read(self.dir.join("index.json")).map_err(write_err)?;

        let mut builder = tar::Builder::new(out);
        let mut append = |name: &str, kind: tar::EntryType, size: u64, data: &mut dyn Read| {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(kind);
            header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            header.set_size(size);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_path(name)?;
            header.set_cksum();
            builder.append(&header, data)
        };
        let mut blobs = vec![self.config_digest.clone()];
        blobs.extend(self.layers.iter().map(|l| l.digest.clone()));
        blobs.push(self.manifest_digest.clone());
        let mut seen = std::collections::BTreeSet::new();
        (|| -> io::Result<()> {
            append("blobs/", tar::EntryType::Directory, 0, &mut io::empty())?;
            append(
                "blobs/sha256/",
                tar::EntryType::Directory,
                0,
                &mut io::empty(),
            )?;
            for digest in blobs.iter().filter(|d| seen.insert(d.to_string())) {
                let file = File::open(self.blob_path(digest))?;
                let size = file.metadata()?.len();
                append(
                    &blob_name(digest),
                    tar::EntryType::Regular,
                    size,
                    &mut BufReader::new(file),
                )?;
            }
            append(
                "index.json",
                tar::EntryType::Regular,
                index.len() as u64,
                &mut index.as_slice(),
            )?;
            append(
                "manifest.json",
                tar::EntryType::Regular,
                docker_manifest.len() as u64,
                &mut docker_manifest.as_slice(),
            )?;
            append(
                "oci-layout",
                tar::EntryType::Regular,
                OCI_LAYOUT.len() as u64,
                &mut OCI_LAYOUT.as_bytes(),
            )?;
            Ok(())
        })()
        .map_err(write_err)?;
        builder.into_inner().map_err(write_err)
    }
}

/// The `oci-layout` file's contents (image-spec v1.0.0 layout).
const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

fn blob_file(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm().as_ref())
        .join(digest.digest())
}

fn parse_digest(text: &str) -> Result<Digest, ImageError> {
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
struct BlobWriter {
    file: HashingWriter<BufWriter<NamedTempFile>>,
}

impl BlobWriter {
    fn create(blobs: &Path) -> Result<BlobWriter, ImageError> {
        let file = NamedTempFile::new_in(blobs).map_err(|source| ImageError::Write {
            path: blobs.to_owned(),
            source,
        })?;
        Ok(BlobWriter {
            file: HashingWriter::new(BufWriter::with_capacity(256 * 1024, file)),
        })
    }

    /// Flushes the blob and names it by its digest; returns the digest and size.
    fn persist(self, blobs: &Path) -> Result<(Digest, u64), ImageError> {
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

pub(crate) fn normalize_into(
    export: impl Read,
    options: &NormalizeOptions,
    out: &Path,
) -> Result<NormalizedImage, ImageError> {
    let blobs = out.join("blobs").join("sha256");
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ImageError::Write { path, source }
    };
    fs::create_dir_all(&blobs).map_err(write_err(&blobs))?;
    let spool = tempfile::Builder::new()
        .prefix(".export-")
        .tempdir_in(out)
        .map_err(write_err(out))?;
    let exported = export::spool(export, spool.path())?;
    let raw_config = fs::read(&exported.config).map_err(ImageError::Export)?;
    let stated = config::diff_ids(&raw_config)?;
    if stated.len() != exported.layers.len() {
        return Err(ImageError::Layout(format!(
            "manifest.json lists {} layers, the config {} diff_ids",
            exported.layers.len(),
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

    let mut layers = Vec::with_capacity(stated.len());
    for (index, path) in exported.layers.iter().enumerate() {
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
        let is_base = index < options.base_diff_ids.len();
        let blob = BlobWriter::create(&blobs)?;
        // Base layers are carried as the engine's uncompressed tar, byte for byte.
        let (input, blob, diff_id, media_type) = if is_base {
            let mut input = input;
            let mut blob = HashingWriter::new(blob);
            io::copy(&mut input, &mut blob).map_err(layer_err)?;
            let (blob, diff_id, _) = blob.finish();
            (input, blob, diff_id, MediaType::ImageLayer)
        } else {
            match options.compression {
                Compression::None => {
                    let (input, blob, _) = layer::normalize_layer(input, HashingWriter::new(blob))
                        .map_err(layer_err)?;
                    let (blob, diff_id, _) = blob.finish();
                    (input, blob, diff_id, MediaType::ImageLayer)
                }
                Compression::Gzip => {
                    let gzip = flate2::GzBuilder::new()
                        .mtime(0)
                        .operating_system(255)
                        .write(blob, flate2::Compression::new(GZIP_LEVEL));
                    let (input, tar, _) = layer::normalize_layer(input, HashingWriter::new(gzip))
                        .map_err(layer_err)?;
                    let (gzip, diff_id, _) = tar.finish();
                    let blob = GzEncoder::finish(gzip).map_err(layer_err)?;
                    (input, blob, diff_id, MediaType::ImageLayerGzip)
                }
            }
        };
        let read_diff_id = input.finish().map_err(layer_err)?;
        if read_diff_id != stated[index] {
            return Err(ImageError::DiffIdMismatch {
                index,
                expected: stated[index].clone(),
                actual: read_diff_id,
            });
        }
        let (digest, size) = blob.persist(&blobs)?;
        layers.push(LayerInfo {
            digest,
            diff_id: parse_digest(&diff_id)?,
            size,
            media_type,
        });
    }

    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let config = config::normalize_config(&raw_config, &diff_ids)?;
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
    spool.close().map_err(write_err(out))?;

    Ok(NormalizedImage {
        dir: out.to_owned(),
        manifest,
        manifest_digest,
        config,
        config_digest,
        layers,
    })
}

fn canonical(value: &impl serde::Serialize) -> Result<Vec<u8>, ImageError> {
    serde_json_canonicalizer::to_vec(value).map_err(|source| ImageError::Json {
        what: "manifest",
        source,
    })
}
