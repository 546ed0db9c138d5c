//! A normalized image as a tar that `docker load` reads: Docker 20.10 reads `manifest.json`, and
//! the same tar is also an OCI layout, as Docker 25 writes it.
//!
//! Deterministic like every other archive here: entries in a fixed order, zeroed times and
//! owners, fixed modes, `manifest.json` in JCS; blobs are streamed from their files.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;

use oci_spec::image::Digest;

use super::layout::{NormalizedImage, OCI_LAYOUT};
use super::ImageError;

/// A blob's name inside the archive.
fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.digest())
}

impl NormalizedImage {
    /// Writes the image as a tar that `docker load` reads. `repo_tags` (`repo:tag`) name the
    /// loaded image.
    pub fn write_docker_archive<W: Write>(
        &self,
        out: W,
        repo_tags: &[String],
    ) -> Result<W, ImageError> {
        let write_err = |source| ImageError::Write {
            path: PathBuf::from("<docker archive>"),
            source,
        };
        let docker_manifest = self
            .docker_manifest(repo_tags)
            .map_err(|e| write_err(io::Error::other(e)))?;
        let index = fs::read(self.dir().join("index.json")).map_err(write_err)?;
        let mut archive = Archive {
            builder: tar::Builder::new(out),
        };
        (|| -> io::Result<()> {
            archive.directory("blobs/")?;
            archive.directory("blobs/sha256/")?;
            for digest in self.blob_order() {
                let file = File::open(self.blob_path(&digest))?;
                let size = file.metadata()?.len();
                archive.file(&blob_name(&digest), size, &mut BufReader::new(file))?;
            }
            archive.bytes("index.json", &index)?;
            archive.bytes("manifest.json", &docker_manifest)?;
            archive.bytes("oci-layout", OCI_LAYOUT.as_bytes())
        })()
        .map_err(write_err)?;
        archive.builder.into_inner().map_err(write_err)
    }

    /// Docker's `manifest.json`: the config, the tags and the layers, in JCS.
    fn docker_manifest(&self, repo_tags: &[String]) -> Result<Vec<u8>, serde_json::Error> {
        let docker_manifest = serde_json::json!([{
            "Config": blob_name(self.config_digest()),
            "RepoTags": repo_tags,
            "Layers": self.layers().iter().map(|l| blob_name(&l.digest)).collect::<Vec<_>>(),
        }]);
        serde_json_canonicalizer::to_vec(&docker_manifest)
    }

    /// Every blob once, in the archive's order: the config, the layers, the manifest.
    fn blob_order(&self) -> Vec<Digest> {
        let mut blobs = vec![self.config_digest().clone()];
        blobs.extend(self.layers().iter().map(|l| l.digest.clone()));
        blobs.push(self.manifest_digest().clone());
        let mut seen = BTreeSet::new();
        blobs.retain(|d| seen.insert(d.to_string()));
        blobs
    }
}

/// The tar being written, one fixed header per entry.
struct Archive<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> Archive<W> {
    fn append(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_path(name)?;
        header.set_cksum();
        self.builder.append(&header, data)
    }
    fn directory(&mut self, name: &str) -> io::Result<()> {
        self.append(name, tar::EntryType::Directory, 0, &mut io::empty())
    }
    fn file(&mut self, name: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
        self.append(name, tar::EntryType::Regular, size, data)
    }
    fn bytes(&mut self, name: &str, mut bytes: &[u8]) -> io::Result<()> {
        self.append(
            name,
            tar::EntryType::Regular,
            bytes.len() as u64,
            &mut bytes,
        )
    }
}
