//! Publishing a normalized image through the registry API, under its content tag.
//!
//! Pipeline position: inside `apply`, after each build or assembly ([`crate::build`] built and
//! normalized the image). Blobs the repository has are skipped (HEAD), the parent's layers are
//! mounted from the parent's repository, the rest are streamed from their files (a base blob an
//! assembly carries by digest only is copied through a file first), then the OCI manifest is put
//! under the content tag. Its digest is what the lock records. A manifest PUT answered "a blob is
//! missing" is checked blob by blob and tried once more: another run pushing the same blobs at
//! that moment makes the registry say so (`put_manifest`).
//!
//! Invariants: the published manifest, config and layers are exactly the bytes normalization
//! wrote (the registry's answer is checked against the digest computed here).

use crate::build::{download_blob, BuildError, Normalized, OCI_MANIFEST};
use crate::image::ImageError;
use crate::registry::{Digest, ErrorCode, RegistryClient, RegistryError, Repository};

/// A blob of a normalized image, as [`publish`] pushes it.
struct Blob<'a> {
    digest: Digest,
    /// Its name in the image layout (where its file is).
    oci: &'a oci_spec::image::Digest,
    size: u64,
    /// One of the base's layers: mounted from `mount_from` when the registry can.
    is_base: bool,
}

/// Publishes the normalized image to `repo` under `tag` through the registry API and returns the
/// manifest digest. `mount_from`: a repository that holds the base layers (a `container:`
/// parent's, an assembled container's registry base): on the same registry they are mounted
/// instead of uploaded; a base blob that is not on disk (an assembly carries a registry base by
/// digest only) and cannot be mounted is copied from there through a file of the scratch
/// directory.
pub async fn publish(
    registry: &RegistryClient,
    repo: &Repository,
    tag: &str,
    normalized: &Normalized,
    mount_from: Option<&Repository>,
) -> Result<Digest, BuildError> {
    let image = &normalized.image;
    let digest = |d: &oci_spec::image::Digest| {
        Digest::parse(d.as_ref()).map_err(|e| {
            BuildError::Image(ImageError::Layout(format!("`{d}` is not a digest: {e}")))
        })
    };
    let mut blobs = vec![Blob {
        digest: digest(image.config_digest())?,
        oci: image.config_digest(),
        size: image.config().len() as u64,
        is_base: false,
    }];
    for (index, layer) in image.layers().iter().enumerate() {
        blobs.push(Blob {
            digest: digest(&layer.digest)?,
            oci: &layer.digest,
            size: layer.size,
            is_base: index < normalized.base_layers,
        });
    }
    for blob in &blobs {
        push_blob(registry, repo, normalized, blob, mount_from).await?;
    }
    put_manifest(registry, repo, tag, normalized, mount_from, &blobs).await
}

/// Whether the registry's answer says a blob the request relies on is missing or broken: what
/// two runs pushing the same blobs at once can make a registry say although every blob is
/// there (see [`put_manifest`]).
fn names_a_missing_blob(error: &RegistryError) -> bool {
    error.codes().iter().any(|code| {
        matches!(
            code,
            ErrorCode::DigestInvalid
                | ErrorCode::BlobUnknown
                | ErrorCode::ManifestBlobUnknown
                | ErrorCode::BlobUploadUnknown
        )
    })
}

/// Makes sure `repo` has `blob`: nothing to do when the registry has it (HEAD), else mounted
/// (a base layer, from `mount_from`) or uploaded from its file (copied from `mount_from` first
/// when it is not on disk). An upload answered with a missing-blob code ([`names_a_missing_blob`])
/// is checked (HEAD: another run may have committed it meanwhile) and, if the blob is still
/// missing, uploaded once more.
async fn push_blob(
    registry: &RegistryClient,
    repo: &Repository,
    normalized: &Normalized,
    blob: &Blob<'_>,
    mount_from: Option<&Repository>,
) -> Result<(), BuildError> {
    if registry.blob_exists(repo, &blob.digest).await? {
        return Ok(());
    }
    if let (true, Some(from)) = (blob.is_base, mount_from) {
        // A registry may refuse the mount (no pull access to `from` in the token it gives
        // for this repository): the upload below still publishes the blob.
        match registry.blob_mount(repo, &blob.digest, from).await {
            Ok(true) => return Ok(()),
            Ok(false) | Err(RegistryError::Unauthorized { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let path = normalized.image.blob_path(blob.oci);
    if let (true, Some(from), false) = (blob.is_base, mount_from, path.exists()) {
        download_blob(registry, from, &blob.digest, blob.size, &path).await?;
    }
    match registry
        .blob_upload(repo, &blob.digest, &path, blob.size)
        .await
    {
        Err(e) if names_a_missing_blob(&e) => {
            if registry.blob_exists(repo, &blob.digest).await? {
                return Ok(());
            }
            registry
                .blob_upload(repo, &blob.digest, &path, blob.size)
                .await?;
        }
        result => result?,
    }
    Ok(())
}

/// Puts the manifest of `normalized` under `tag`, checking its blobs and trying once more when
/// the registry says one is missing.
///
/// Why (issue 20, item 14): two runs publishing the same image at once — two applies of one
/// cookbook, `sync --apply` beside a manual apply — both find a blob missing and both push it.
/// In distribution (the registry Debian ships as `docker-registry`, 2.8), every push of a blob
/// into a repository, a mount as much as an upload's commit, rewrites the repository's link file
/// for that blob in place (the filesystem driver's `PutContent`: open, truncate, write), and a
/// manifest PUT checks each blob it names by reading that link file — unless the registry's
/// blob descriptor cache already knows the blob in this repository (an upload's commit puts it
/// there, a mount does not). A read between the other run's truncate and write sees an empty
/// link, `digest.Parse("")` fails, and the PUT is answered 400 with `DIGEST_INVALID` ("provided
/// digest did not match uploaded content") followed by `MANIFEST_BLOB_UNKNOWN`, although every
/// blob is there. Against the test registry, 18% of manifest PUTs sent together with a second
/// mount of one of their blobs were answered so (tests/it/concurrency.rs lines two applies up that
/// way).
///
/// So such an answer (or `BLOB_UNKNOWN`) is checked against the registry: each blob HEADed —
/// which also puts it into the registry's descriptor cache, so the second PUT reads no link
/// file of a mounted blob — any blob really missing pushed again, and the manifest put once
/// more. A second failure is reported as it comes.
async fn put_manifest(
    registry: &RegistryClient,
    repo: &Repository,
    tag: &str,
    normalized: &Normalized,
    mount_from: Option<&Repository>,
    blobs: &[Blob<'_>],
) -> Result<Digest, BuildError> {
    let manifest = normalized.image.manifest();
    match registry
        .manifest_put(repo, tag, OCI_MANIFEST, manifest)
        .await
    {
        Err(e) if names_a_missing_blob(&e) => {
            for blob in blobs {
                push_blob(registry, repo, normalized, blob, mount_from).await?;
            }
            Ok(registry
                .manifest_put(repo, tag, OCI_MANIFEST, manifest)
                .await?)
        }
        result => Ok(result?),
    }
}
