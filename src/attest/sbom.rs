//! The SBOM: an SPDX 2.3 JSON document of one image, and the in-toto statement that carries it.
//!
//! What it lists, and nothing it cannot know: the image as the described package (by manifest
//! digest), its pinned base image as a package, each non-base layer as a package that CONTAINS
//! its regular files (path, SHA-1 — which SPDX 2.3 requires of every file — and SHA-256), and
//! the packages the container's applications pin in their dependency files ([`packages`]), which
//! the image DEPENDS_ON, with a purl where one exists. Base layers are the base's: the base
//! package stands for them by digest.
//!
//! Deterministic: every list is sorted, every id derived from its position in a sorted list,
//! `documentNamespace` from the image's digest, `created` given by the caller (the image config's
//! fixed time), so the same image gives the same bytes on every run. [`layer_files`] reads a
//! layer tar (uncompressed or gzip) from any `Read`: the caller opens the image.

pub mod packages;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{json, Value};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use super::{array_at, canonical, read_statement, str_at, ResolvedBase, StatementError, Subject};
use super::{sha256_hex, STATEMENT_TYPE};
use crate::model::{ContainerKind, Cookbook, Dependencies, Name, RelPath};
use crate::oci::Digest;

/// The SPDX 2.3 document, as in-toto names the predicate.
pub const PREDICATE_TYPE: &str = "https://spdx.dev/Document/v2.3";

/// `documentNamespace` is this prefix and the image digest's hex: one document per image.
pub const NAMESPACE_PREFIX: &str = "https://cookbook.invalid/spdx/sha256/";

/// The most files one layer may list: an SBOM of more would pass the cap a reader of the
/// statement enforces ([`super::MAX_STATEMENT_BYTES`], about 200 bytes a file).
pub const MAX_LAYER_FILES: usize = 250_000;

/// What an image's SBOM is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomInput {
    /// The repository (no tag) and the image's manifest digest.
    pub subject: Subject,
    /// The document's and the image package's name (the image reference a reader knows).
    pub image_name: String,
    /// The pinned base image (`None`: `scratch`, or a base not pinned).
    pub base: Option<ResolvedBase>,
    /// The non-base layers, in the image's order.
    pub layers: Vec<LayerFiles>,
    pub packages: Vec<Package>,
    /// RFC 3339 (the image config's `created`: fixed for normalized images).
    pub created: String,
}

/// One layer's regular files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFiles {
    pub diff_id: Digest,
    pub files: Vec<FileEntry>,
}

/// A regular file of a layer: its absolute path in the image, and its content's hashes (hex).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileEntry {
    /// `/`-rooted, normalized (`/app/main.py`).
    pub path: String,
    pub sha256: String,
    /// SPDX 2.3 requires a SHA-1 of every file.
    pub sha1: String,
}

/// A package an application's dependency file pins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub purl: Option<String>,
    /// The file that names it, relative to the cookbook (`api/requirements.txt`), or `cookbook`
    /// for a spec the cookbook lists itself.
    pub source: String,
}

/// What an SBOM statement holds, enough for `verify` to name what it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomClaims {
    pub subjects: Vec<Subject>,
    /// The document's `name`.
    pub name: String,
    pub document_namespace: String,
    /// Packages the image depends on (its applications' pins).
    pub packages: usize,
    /// Files of the non-base layers.
    pub files: usize,
}

/// The SPDX 2.3 JSON document of `input`.
pub fn document(input: &SbomInput) -> Value {
    const IMAGE: &str = "SPDXRef-Image";
    let digest_hex = sha256_hex(&input.subject.digest);
    let mut packages = vec![json!({
        "SPDXID": IMAGE,
        "name": input.image_name,
        "versionInfo": input.subject.digest.as_str(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "checksums": [checksum("SHA256", digest_hex)],
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": [purl_ref(&oci_purl(&input.subject))],
    })];
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE)];
    let mut files = Vec::new();

    if let Some(base) = &input.base {
        let mut package = json!({
            "SPDXID": "SPDXRef-Base",
            "name": base.reference.as_str(),
            "versionInfo": base.digest.as_str(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "checksums": [checksum("SHA256", sha256_hex(&base.digest))],
            "primaryPackagePurpose": "CONTAINER",
        });
        if let Some(source) = base.source {
            package["comment"] = json!(format!("pinned by {}", source.as_str()));
        }
        packages.push(package);
        relationships.push(relationship(IMAGE, "DESCENDANT_OF", "SPDXRef-Base"));
    }

    for (l, layer) in input.layers.iter().enumerate() {
        let id = format!("SPDXRef-Layer-{}", l + 1);
        let mut sorted: Vec<&FileEntry> = layer.files.iter().collect();
        sorted.sort();
        packages.push(json!({
            "SPDXID": id,
            "name": format!("layer {}", layer.diff_id),
            "versionInfo": layer.diff_id.as_str(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": true,
            "packageVerificationCode": {"packageVerificationCodeValue": verification_code(&sorted)},
            "checksums": [checksum("SHA256", sha256_hex(&layer.diff_id))],
            "primaryPackagePurpose": "ARCHIVE",
            "comment": "a layer of the image (diff_id: the digest of its uncompressed tar)",
        }));
        relationships.push(relationship(IMAGE, "CONTAINS", &id));
        for (f, file) in sorted.into_iter().enumerate() {
            let file_id = format!("SPDXRef-File-{}-{}", l + 1, f + 1);
            files.push(json!({
                "SPDXID": file_id,
                // SPDX names a file relative to its package's root, `./`-prefixed.
                "fileName": format!(".{}", file.path),
                "checksums": [checksum("SHA1", &file.sha1), checksum("SHA256", &file.sha256)],
            }));
            relationships.push(relationship(&id, "CONTAINS", &file_id));
        }
    }

    let mut pinned = input.packages.clone();
    pinned.sort();
    pinned.dedup();
    for (i, p) in pinned.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}", i + 1);
        let mut package = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "LIBRARY",
            "sourceInfo": format!("pinned in {}", p.source),
        });
        if let Some(purl) = &p.purl {
            package["externalRefs"] = json!([purl_ref(purl)]);
        }
        packages.push(package);
        relationships.push(relationship(IMAGE, "DEPENDS_ON", &id));
    }

    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": input.image_name,
        "documentNamespace": format!("{NAMESPACE_PREFIX}{digest_hex}"),
        "creationInfo": {
            "created": input.created,
            "creators": [format!("Tool: cookbook-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "files": files,
        "relationships": relationships,
    })
}

/// SPDX 2.3 §7.9: SHA-1 of the files' SHA-1 hex values, sorted, concatenated.
fn verification_code(files: &[&FileEntry]) -> String {
    let mut sha1s: Vec<&str> = files.iter().map(|f| f.sha1.as_str()).collect();
    sha1s.sort_unstable();
    let mut hasher = Sha1::new();
    for sha1 in sha1s {
        hasher.update(sha1.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn checksum(algorithm: &str, value: &str) -> Value {
    json!({"algorithm": algorithm, "checksumValue": value})
}

fn purl_ref(purl: &str) -> Value {
    json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl})
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

/// The image's purl (purl-spec's `oci` type): the repository's last segment, the digest as the
/// version, the repository as `repository_url`.
fn oci_purl(subject: &Subject) -> String {
    let name = subject.name.rsplit('/').next().unwrap_or(&subject.name);
    let url: String = subject
        .name
        .split('/')
        .map(packages::encode)
        .collect::<Vec<_>>()
        .join("/");
    format!(
        "pkg:oci/{}@{}?repository_url={url}",
        packages::encode(&name.to_ascii_lowercase()),
        packages::encode(subject.digest.as_str())
    )
}

/// The in-toto statement whose predicate is [`document`]: RFC 8785 bytes, deterministic.
pub fn statement(input: &SbomInput) -> Vec<u8> {
    canonical(&json!({
        "_type": STATEMENT_TYPE,
        "subject": [input.subject],
        "predicateType": PREDICATE_TYPE,
        "predicate": document(input),
    }))
}

/// Reads an SBOM statement (at most [`super::MAX_STATEMENT_BYTES`]).
pub fn parse(bytes: &[u8]) -> Result<SbomClaims, StatementError> {
    let (value, subjects) = read_statement(bytes, PREDICATE_TYPE)?;
    let version = str_at(&value, "/predicate/spdxVersion")?;
    if version != "SPDX-2.3" {
        return Err(StatementError::Unexpected {
            pointer: "/predicate/spdxVersion",
            expected: "SPDX-2.3",
            found: version.to_owned(),
        });
    }
    let name = str_at(&value, "/predicate/name")?.to_owned();
    let document_namespace = str_at(&value, "/predicate/documentNamespace")?.to_owned();
    let packages = array_at(&value, "/predicate/packages")?;
    let mut ids = Vec::with_capacity(packages.len());
    for (i, package) in packages.iter().enumerate() {
        let pointer = format!("/predicate/packages/{i}/SPDXID");
        ids.push(
            package
                .get("SPDXID")
                .and_then(Value::as_str)
                .ok_or_else(|| StatementError::field(pointer, "missing or not a string"))?,
        );
    }
    let files = match value.pointer("/predicate/files") {
        None => 0,
        Some(_) => array_at(&value, "/predicate/files")?.len(),
    };
    Ok(SbomClaims {
        subjects,
        name,
        document_namespace,
        packages: ids
            .iter()
            .filter(|id| id.starts_with("SPDXRef-Package-"))
            .count(),
        files,
    })
}

/// The regular files of one layer tar (uncompressed or gzip), sorted by path.
///
/// Skipped: directories, symbolic links, devices, whiteouts (`.wh.*`, which delete a lower
/// layer's file rather than add one). A hard link is listed with its target's hashes (it is the
/// same file). Names are normalized: a leading `./` or `/` is dropped and the path rooted at `/`
/// (a layer's root is the image's); a name with a `..` component is refused (`InvalidData`): no
/// engine writes one, and it could name a file outside the image. A path a later entry of the
/// same layer writes again is listed once, as the later entry has it. Non-UTF-8 names are
/// listed lossily (U+FFFD), as SPDX names are text.
pub fn layer_files(layer: impl Read) -> io::Result<Vec<FileEntry>> {
    let mut reader = BufReader::with_capacity(256 * 1024, layer);
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if gzip {
        files_of(flate2::read::MultiGzDecoder::new(reader))
    } else {
        files_of(reader)
    }
}

fn files_of(reader: impl Read) -> io::Result<Vec<FileEntry>> {
    let mut archive = tar::Archive::new(reader);
    let mut files: BTreeMap<String, (String, String)> = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = normalize(&raw)? else {
            continue;
        };
        let kind = entry.header().entry_type();
        let hashes = if kind.is_file() || kind == tar::EntryType::Continuous {
            hash(&mut entry)?
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            match normalize(&target)?.and_then(|t| files.get(&t).cloned()) {
                Some(hashes) => hashes,
                None => continue, // a link to what this layer does not hold as a file
            }
        } else {
            files.remove(&path); // a directory or link replacing an earlier file
            continue;
        };
        files.insert(path, hashes);
        if files.len() > MAX_LAYER_FILES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the layer holds more than {MAX_LAYER_FILES} files"),
            ));
        }
    }
    Ok(files
        .into_iter()
        .map(|(path, (sha256, sha1))| FileEntry { path, sha256, sha1 })
        .collect())
}

/// `/`-rooted path of a tar name; `None` for a whiteout or the root itself.
fn normalize(raw: &str) -> io::Result<Option<String>> {
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a layer entry names `{raw}`, which leaves the image's root"),
                ))
            }
            _ => parts.push(part),
        }
    }
    let whiteout = parts.last().is_some_and(|name| name.starts_with(".wh."));
    if parts.is_empty() || whiteout {
        return Ok(None);
    }
    Ok(Some(format!("/{}", parts.join("/"))))
}

fn hash(reader: &mut impl Read) -> io::Result<(String, String)> {
    let mut sha256 = Sha256::new();
    let mut sha1 = Sha1::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        sha1.update(&buf[..n]);
    }
    Ok((hex::encode(sha256.finalize()), hex::encode(sha1.finalize())))
}

/// The packages `container`'s applications pin (see [`packages`]' module): each application's
/// dependency files in its source directory under `base_dir` (and the file its `dependencies`
/// names), and, for a Python application, the `name==version` specs the cookbook lists. Sorted,
/// without repeats. A Dockerfile container has no applications: none.
pub fn packages(cookbook: &Cookbook, container: &Name, base_dir: &Path) -> Vec<Package> {
    let Some(ContainerKind::Generated(generated)) =
        cookbook.containers.get(container).map(|c| &c.kind)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in &generated.applications {
        let Some(app) = cookbook.applications.get(name) else {
            continue;
        };
        let mut files: Vec<RelPath> = packages::FILES
            .iter()
            .filter_map(|f| RelPath::parse(f).ok())
            .collect();
        match &app.dependencies {
            Dependencies::File(path) => files.push(path.clone()),
            Dependencies::Packages(specs) if app.language.as_deref() == Some("python") => {
                out.extend(
                    specs
                        .iter()
                        .filter_map(|s| packages::pinned_requirement(s, "cookbook")),
                );
            }
            Dependencies::Packages(_) => {}
        }
        files.sort();
        files.dedup();
        for file in files {
            let path = app.source.join(&file);
            out.extend(packages::read(&path.under(base_dir), path.as_str()));
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hash::PinSource;
    use crate::oci::WrittenReference;

    /// Compares `actual` with the golden file `tests/golden/attest/NAME`, byte for byte; with
    /// `UPDATE_SNAPSHOTS=1` (as the snapshot tests in tests/it/common) it writes the file instead.
    /// The SBOM names cookbook's version (`creators`): a version bump re-blesses it.
    pub(crate) fn golden(name: &str, actual: &[u8]) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/attest")
            .join(name);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e} (UPDATE_SNAPSHOTS=1 writes it)",
                path.display()
            )
        });
        assert!(
            expected == actual,
            "{} differs:\n--- expected\n{}\n--- actual\n{}\n(UPDATE_SNAPSHOTS=1 accepts the new bytes)",
            path.display(),
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(actual)
        );
    }

    fn d(c: &str) -> Digest {
        Digest::parse(&format!("sha256:{}", c.repeat(64))).unwrap()
    }

    fn file(path: &str, content: &[u8]) -> FileEntry {
        FileEntry {
            path: path.into(),
            sha256: hex::encode(Sha256::digest(content)),
            sha1: hex::encode(Sha1::digest(content)),
        }
    }

    /// The fixed image of the golden vectors: a base, one layer of two files, two pins.
    pub(crate) fn fixed() -> SbomInput {
        SbomInput {
            subject: Subject {
                name: "127.0.0.1:5000/shop/api".into(),
                digest: d("1"),
            },
            image_name: "127.0.0.1:5000/shop/api".into(),
            base: Some(ResolvedBase {
                reference: WrittenReference::parse("python:3.12-slim").unwrap(),
                digest: d("b"),
                source: Some(PinSource::Registry),
            }),
            layers: vec![LayerFiles {
                diff_id: d("c"),
                files: vec![
                    file("/app/requirements.txt", b"flask==3.0.2\n"),
                    file("/app/main.py", b"print('hi')\n"),
                ],
            }],
            packages: vec![Package {
                name: "flask".into(),
                version: "3.0.2".into(),
                purl: Some("pkg:pypi/flask@3.0.2".into()),
                source: "api/requirements.txt".into(),
            }],
            created: "1970-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn the_document_and_statement_match_their_golden_vectors() {
        let document = serde_json::to_vec_pretty(&document(&fixed())).unwrap();
        golden("sbom.spdx.json", &document);
        golden("sbom.statement.json", &statement(&fixed()));
    }

    #[test]
    fn the_bytes_do_not_depend_on_input_order() {
        let mut input = fixed();
        let before = statement(&input);
        input.layers[0].files.reverse();
        input.packages.push(input.packages[0].clone());
        assert_eq!(statement(&input), before);
    }

    #[test]
    fn a_statement_reads_back_with_its_counts() {
        let input = fixed();
        let claims = parse(&statement(&input)).unwrap();
        assert_eq!(
            claims,
            SbomClaims {
                subjects: vec![input.subject.clone()],
                name: input.image_name.clone(),
                document_namespace: format!("{NAMESPACE_PREFIX}{}", "1".repeat(64)),
                packages: 1,
                files: 2,
            }
        );
        let provenance =
            crate::attest::provenance::statement(&crate::attest::provenance::tests::fixed());
        assert!(matches!(
            parse(&provenance),
            Err(StatementError::Unexpected {
                pointer: "/predicateType",
                ..
            })
        ));
    }

    fn tar(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, content, link) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            if let Some(link) = link {
                header.set_link_name(link).unwrap();
            }
            // Raw names: the builder's own path checks would refuse the hostile ones.
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn layer_files_lists_regular_files_rooted_and_sorted() {
        use tar::EntryType as T;
        let layer = tar(&[
            ("./app/", T::Directory, b"", None),
            ("./app/z.py", T::Regular, b"z", None),
            ("app/a.py", T::Regular, b"old", None),
            ("/app/a.py", T::Regular, b"a", None),
            ("app/link", T::Symlink, b"", Some("a.py")),
            ("app/hard", T::Link, b"", Some("app/z.py")),
            ("app/.wh.gone", T::Regular, b"", None),
            ("etc/.wh..wh..opq", T::Regular, b"", None),
            ("dev/null", T::Char, b"", None),
        ]);
        let expected = vec![
            file("/app/a.py", b"a"),
            file("/app/hard", b"z"),
            file("/app/z.py", b"z"),
        ];
        assert_eq!(layer_files(&layer[..]).unwrap(), expected);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &layer).unwrap();
        assert_eq!(layer_files(&gz.finish().unwrap()[..]).unwrap(), expected);
    }

    proptest::proptest! {
        /// Order resistant: whatever order a layer's entries come in, and whatever order its
        /// files are handed in, the statement is the same bytes.
        #[test]
        fn the_statement_does_not_depend_on_entry_order(
            files in proptest::collection::btree_map("[a-c]{1,3}(/[a-c]{1,3}){0,2}", "[ -~]{0,8}", 1..12),
            seed in proptest::prelude::any::<u64>(),
        ) {
            // A file and a directory of the same name cannot both be: keep the leaves only.
            let leaves: Vec<(&String, &String)> = files
                .iter()
                .filter(|(p, _)| !files.keys().any(|q| q.starts_with(&format!("{p}/"))))
                .collect();
            let entries = |order: &[(&String, &String)]| {
                let entries: Vec<(&str, tar::EntryType, &[u8], Option<&str>)> = order
                    .iter()
                    .map(|(p, c)| (p.as_str(), tar::EntryType::Regular, c.as_bytes(), None))
                    .collect();
                layer_files(&tar(&entries)[..]).unwrap()
            };
            let mut shuffled = leaves.clone();
            fastrand::Rng::with_seed(seed).shuffle(&mut shuffled);
            let listed = entries(&leaves);
            proptest::prop_assert_eq!(&listed, &entries(&shuffled));
            let expected: Vec<FileEntry> = leaves
                .iter()
                .map(|(p, c)| file(&format!("/{p}"), c.as_bytes()))
                .collect();
            proptest::prop_assert_eq!(&listed, &expected);

            let mut input = fixed();
            input.layers[0].files = listed.clone();
            let before = statement(&input);
            input.layers[0].files.reverse();
            fastrand::Rng::with_seed(seed).shuffle(&mut input.layers[0].files);
            proptest::prop_assert_eq!(statement(&input), before);
        }
    }

    #[test]
    fn a_layer_entry_leaving_the_root_is_refused() {
        let layer = tar(&[("app/../../etc/passwd", tar::EntryType::Regular, b"x", None)]);
        let e = layer_files(&layer[..]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("leaves the image's root"), "{e}");
        assert!(layer_files(&b"not a tar at all, just text"[..]).is_err());
    }

    #[test]
    fn packages_come_from_the_applications_files_and_pinned_specs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("api")).unwrap();
        std::fs::write(
            dir.path().join("api/requirements.txt"),
            "Flask==3.0.2\nrequests\n",
        )
        .unwrap();
        let wire = serde_json::json!({
            "manifest_version": "1.1",
            "project": {"name": "shop"},
            "applications": {
                "api": {"source": "api", "language": "python", "dependencies": "requirements.txt"},
                "worker": {
                    "source": "api",
                    "language": "python",
                    "dependencies": ["celery==5.3.6", "redis>=5"]
                }
            },
            "containers": {
                "api": {"base_image": "python:3.12-slim", "applications": ["api", "worker"]}
            }
        });
        let wire = serde_json::from_value(wire).unwrap();
        let (cookbook, problems) = crate::model::convert(&wire, None);
        assert!(problems.is_empty(), "{problems:?}");
        let found = packages(&cookbook, &Name::parse("api").unwrap(), dir.path());
        assert_eq!(
            found,
            vec![
                Package {
                    name: "Flask".into(),
                    version: "3.0.2".into(),
                    purl: Some("pkg:pypi/flask@3.0.2".into()),
                    source: "api/requirements.txt".into(),
                },
                Package {
                    name: "celery".into(),
                    version: "5.3.6".into(),
                    purl: Some("pkg:pypi/celery@5.3.6".into()),
                    source: "cookbook".into(),
                },
            ]
        );
    }
}
