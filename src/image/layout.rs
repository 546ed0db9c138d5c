//! The normalized image as an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`), how it is produced from an export, and how it becomes a
//! `docker load`-able tar.
//!
//! Every blob is written to a temp file in `blobs/sha256/` while its digest is computed, then
//! renamed to its digest: a layer is never in memory, and a half-written blob never has a name.
//! The manifest and `index.json` are JCS like the config, so their bytes are fixed by their
//! contents.

use std::collections::BTreeMap;
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

    /// Flushes the blob without naming it: its file, digest and size.
    fn finish(self) -> io::Result<(NamedTempFile, String, u64)> {
        let (buffered, digest, size) = self.file.finish();
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        Ok((file, digest, size))
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
    let blobs = create_blobs_dir(out)?;
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ImageError::Write { path, source }
    };
    let spool = tempfile::Builder::new()
        .prefix(".export-")
        .tempdir_in(out)
        .map_err(write_err(out))?;
    let mut speculative = unpack(export, spool.path(), &blobs, options.compression)?;
    let exported = export::locate(spool.path())?;
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

    let mut layers: Vec<LayerInfo> = Vec::with_capacity(stated.len());
    // A layer listed twice (the legacy layout links a repeated layer to its first copy) is
    // written once; `moved`: spooled layers carried into `blobs` by a rename.
    let mut done: BTreeMap<(PathBuf, bool), LayerInfo> = BTreeMap::new();
    let mut moved: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    // What each layer file hashed to as exported (checked against each listing of it).
    let mut raw_ids: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (index, path) in exported.layers.iter().enumerate() {
        let is_base = index < options.base_diff_ids.len();
        let key = (path.clone(), is_base);
        let info = match (done.get(&key), speculative.remove(path)) {
            (Some(info), _) => {
                let read = raw_ids.get(path).cloned().unwrap_or_default();
                if read != stated[index] {
                    return Err(ImageError::DiffIdMismatch {
                        index,
                        expected: stated[index].clone(),
                        actual: read,
                    });
                }
                info.clone()
            }
            (None, Some(spec)) => {
                raw_ids.insert(path.clone(), spec.raw_diff_id.clone());
                if spec.raw_diff_id != stated[index] {
                    return Err(ImageError::DiffIdMismatch {
                        index,
                        expected: stated[index].clone(),
                        actual: spec.raw_diff_id,
                    });
                }
                if is_base {
                    // The engine's tar as it is: its digest is its diff_id.
                    let digest = parse_digest(&spec.raw_diff_id)?;
                    let target = blobs.join(digest.digest());
                    fs::rename(path, &target).map_err(write_err(&target))?;
                    moved.insert(path.clone(), target.clone());
                    let size = fs::metadata(&target).map_err(write_err(&target))?.len();
                    LayerInfo {
                        digest: digest.clone(),
                        diff_id: digest,
                        size,
                        media_type: MediaType::ImageLayer,
                    }
                } else {
                    let (file, digest, size, diff_id) = spec
                        .normalized
                        .map_err(|source| ImageError::Layer { index, source })?;
                    let digest = parse_digest(&digest)?;
                    let target = blobs.join(digest.digest());
                    file.persist(&target)
                        .map_err(|e| write_err(&target)(e.error))?;
                    LayerInfo {
                        digest,
                        diff_id: parse_digest(&diff_id)?,
                        size,
                        media_type: layer_media_type(options.compression),
                    }
                }
            }
            (None, None) => {
                let source = moved.get(path).unwrap_or(path);
                let info = normalize_file(index, source, is_base, &stated[index], &blobs, options)?;
                raw_ids.insert(path.clone(), stated[index].clone());
                info
            }
        };
        done.insert(key, info.clone());
        layers.push(info);
    }

    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let config = config::normalize_config(&raw_config, &diff_ids)?;
    let image = write_image(out, config, layers)?;
    spool.close().map_err(write_err(out))?;
    Ok(image)
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

fn layer_media_type(compression: Compression) -> MediaType {
    match compression {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
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
        let write_err = |source| ImageError::Write {
            path: target.clone(),
            source,
        };
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).map_err(write_err)?;
        }
        let raw = File::create(&target).map_err(write_err)?;
        let mut tee = Tee {
            inner: &mut entry,
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
                layer::normalize_layer(&mut tee, HashingWriter::new(gzip)).and_then(
                    |(_, tar, _)| {
                        let (gzip, diff_id, _) = tar.finish();
                        Ok((GzEncoder::finish(gzip)?, diff_id))
                    },
                )
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
        let real = target.canonicalize().map_err(write_err)?;
        speculative.insert(
            real,
            Speculative {
                raw_diff_id,
                normalized,
            },
        );
    }
    Ok(speculative)
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
