//! From an image the engine built (or exported) to a reproducible one: export, normalize, load
//! back.
//!
//! Pipeline position: inside [`crate::build`], after each engine build (`apply`, and `verify
//! --rebuild`, which rebuilds and compares), and for an assembly's engine base. The steps:
//! 1. [`base_reference`]: the image the build started FROM (the final stage's `FROM` of the
//!    Dockerfile, generated or the author's); its layers, as the engine has them
//!    ([`base_diff_ids`]), are carried byte for byte — they belong to whoever built the base;
//! 2. [`normalize_image`]: the engine's export (`docker save`) streamed into
//!    [`crate::image::normalize`] on a blocking thread through a bounded channel, so the export
//!    and the spooling overlap and no layer is ever in memory;
//! 3. [`load`]: the normalized image loaded back into the engine under the container's local and
//!    registry names, so its local id is its config digest and a `container:` child is built
//!    FROM exactly the normalized parent.
//!
//! Publishing the result through the registry API is `apply`'s (`apply::publish`). Every scratch
//! file lives in a temporary directory of this run that is removed when the returned handle drops.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::BuildError;
use crate::engine::{Engine, EngineError};
use crate::image::{normalize, Compression, ImageError, NormalizeOptions, NormalizedImage};
use crate::registry::{Digest, RegistryClient, Repository};

/// The media type of the manifests normalization writes.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A normalized image in a scratch directory of this run (removed when this drops).
#[derive(Debug)]
pub struct Normalized {
    pub image: NormalizedImage,
    /// How many leading layers are the base's, carried as they were.
    pub base_layers: usize,
    dir: tempfile::TempDir,
}

impl Normalized {
    /// An image written into the scratch directory `dir` (which the value then owns).
    pub(crate) fn new(image: NormalizedImage, base_layers: usize, dir: tempfile::TempDir) -> Self {
        Normalized {
            image,
            base_layers,
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The scratch directory, to build another image in (an assembly on this exported base).
    pub(crate) fn into_dir(self) -> tempfile::TempDir {
        self.dir
    }
}

/// The image the final stage of `dockerfile` starts FROM, as the engine names it; `None` for
/// `FROM scratch`. Read by the one reader of `FROM` lines (`context::from_lines`): global
/// `ARG`s substituted, with `build_args` overriding their defaults, as the engine does; a stage
/// built FROM an earlier stage is followed to that stage's image; `target` picks the stage
/// instead of the last one. A Dockerfile that reader refuses gives `None`: harmless, since
/// [`base_diff_ids`] only carries a base whose layers the built image starts with.
pub fn base_reference(
    dockerfile: &str,
    build_args: &BTreeMap<String, String>,
    target: Option<&str>,
) -> Option<String> {
    let lines = crate::context::from_lines::parse(dockerfile, build_args).ok()?;
    lines.final_image(target).map(str::to_owned)
}

/// The base's diff_ids to carry unchanged: the layers of `base` in the engine, if the built image
/// (`built_layers`) starts with them; else none (every layer is then normalized, which is still
/// reproducible, only not byte for byte the base's).
pub async fn base_diff_ids<E: Engine>(
    engine: &E,
    base: Option<&str>,
    built_layers: &[String],
) -> Result<Vec<String>, EngineError> {
    let Some(base) = base else {
        return Ok(Vec::new());
    };
    let Some(info) = engine.inspect_image(base).await? else {
        return Ok(Vec::new());
    };
    if built_layers.starts_with(&info.layers) {
        Ok(info.layers)
    } else {
        Ok(Vec::new())
    }
}

/// A blocking reader over the chunks an async task sends (the engine's export stream).
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Exports the local image `image` from the engine and normalizes it into a scratch directory,
/// carrying `base_diff_ids`' layers unchanged.
pub async fn normalize_image<E: Engine>(
    engine: &E,
    image: &str,
    base_diff_ids: Vec<String>,
) -> Result<Normalized, BuildError> {
    let dir = tempfile::Builder::new()
        .prefix("cookbook-image-")
        .tempdir()
        .map_err(BuildError::Scratch)?;
    let out = dir.path().join("oci");
    let base_layers = base_diff_ids.len();
    let options = NormalizeOptions {
        base_diff_ids,
        compression: Compression::default(),
    };
    // A few chunks in flight: the export waits for the disk, never fills memory.
    let (tx, rx) = mpsc::channel(16);
    let normalizer = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            rx,
            current: bytes::Bytes::new(),
        };
        normalize(reader, &options, &out)
    });
    let mut export = engine.export_image(image);
    let mut export_error = None;
    while let Some(chunk) = export.next().await {
        match chunk {
            Ok(bytes) => {
                if tx.send(Ok(bytes)).await.is_err() {
                    break; // the normalizer stopped: its error says why
                }
            }
            Err(e) => {
                let _ = tx
                    .send(Err(io::Error::other(format!("the export failed: {e}"))))
                    .await;
                export_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let normalized = match normalizer.await {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    if let Some(e) = export_error {
        return Err(e.into());
    }
    Ok(Normalized {
        image: normalized?,
        base_layers,
        dir,
    })
}

/// Loads the normalized image into the engine under `names` (`repo:tag`) and checks that the
/// engine knows it by its config digest.
pub async fn load<E: Engine>(
    engine: &E,
    normalized: &Normalized,
    names: &[String],
) -> Result<(), BuildError> {
    let archive = normalized.dir().join("image.tar");
    {
        let (image, archive, names) = (normalized.image.clone(), archive.clone(), names.to_vec());
        tokio::task::spawn_blocking(move || -> Result<(), ImageError> {
            let file = std::fs::File::create(&archive).map_err(|source| ImageError::Write {
                path: archive.clone(),
                source,
            })?;
            let writer = image.write_docker_archive(io::BufWriter::new(file), &names)?;
            writer
                .into_inner()
                .map_err(|e| ImageError::Write {
                    path: archive.clone(),
                    source: e.into_error(),
                })?
                .sync_all()
                .map_err(|source| ImageError::Write {
                    path: archive.clone(),
                    source,
                })
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    }
    engine.load_image(&archive).await?;
    let _ = std::fs::remove_file(&archive);
    // Checked by id, not through `names`: another run loading an image with the same input hash
    // (the same sources at another commit, whose revision label differs) may have moved a name
    // since, and that is no failure of this load.
    let expected = normalized.image.config_digest().to_string();
    let actual = engine
        .image_exists(&expected)
        .await?
        .map(|id| id.to_string())
        .unwrap_or_else(|| "(none)".into());
    if actual != expected {
        return Err(BuildError::LoadedId { expected, actual });
    }
    Ok(())
}

/// Downloads the blob `digest` (`size` bytes, by its descriptor) of `repo` to `path`, checked
/// against its size while streaming and its digest at the end: through a temporary file beside
/// it, renamed only once complete, so a failed download never leaves a file that a later step
/// would take for the blob.
pub async fn download_blob(
    registry: &RegistryClient,
    repo: &Repository,
    digest: &Digest,
    size: u64,
    path: &Path,
) -> Result<(), BuildError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let partial = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dir)
        .map_err(BuildError::Scratch)?
        .into_temp_path();
    if !registry.blob_to_file(repo, digest, size, &partial).await? {
        return Err(BuildError::Base {
            reference: repo.to_string(),
            message: format!("the registry has no blob {digest} there"),
        });
    }
    partial
        .persist(path)
        .map_err(|e| BuildError::Scratch(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_final_stage_base_is_found() {
        let none = BTreeMap::new();
        assert_eq!(
            base_reference("# c\nFROM busybox:1\nRUN x\n", &none, None),
            Some("busybox:1".into())
        );
        assert_eq!(
            base_reference("FROM scratch\nCOPY a /\n", &none, None),
            None
        );
        let multi = "FROM --platform=linux/amd64 golang:1 AS build\nRUN go build\nFROM build AS test\nFROM alpine:3 as run\nCOPY --from=build /x /x\n";
        assert_eq!(base_reference(multi, &none, None), Some("alpine:3".into()));
        assert_eq!(
            base_reference(multi, &none, Some("test")),
            Some("golang:1".into())
        );
        assert_eq!(base_reference(multi, &none, Some("nope")), None);
        let with_args = "ARG BASE=debian\nARG TAG=\"12\"\nFROM ${BASE}:$TAG \\\n  AS x\n";
        assert_eq!(
            base_reference(with_args, &none, None),
            Some("debian:12".into())
        );
        assert_eq!(
            base_reference(with_args, &args(&[("BASE", "ubuntu")]), None),
            Some("ubuntu:12".into())
        );
        assert_eq!(
            base_reference("FROM ${X:-busybox}\n", &none, None),
            Some("busybox".into())
        );
    }
}
