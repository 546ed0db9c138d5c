//! The provenance statement: an in-toto Statement v1 with a SLSA Provenance v1 predicate that
//! names what an image was built from, so that each claim can be recomputed.
//!
//! `buildDefinition` is what was asked (the cookbook, container, site and commit; the pinned
//! bases; the sources, by the container's input hash and its hash manifest's digest) and
//! `runDetails` what ran (cookbook's version, the run's times). The build type is specified in
//! docs/BUILD-TYPE.md: every field, and how to recompute it.
//!
//! [`statement`] is deterministic: the RFC 8785 (JCS) bytes of the document, so the same inputs
//! (the metadata included) give the same bytes, and a signature over them is reproducible.
//! [`parse`] reads a statement back for `verify`: capped, strict on the fields it reads, tolerant
//! of fields it does not (a later writer may add some).

use serde_json::{json, Map, Value};

use super::{
    array_at, at, canonical, digest_set, read_statement, str_at, BuildMetadata, ResolvedBase,
    StatementError, Subject, STATEMENT_TYPE,
};
use crate::hash::{Fingerprint, InputHash, PinSource};
use crate::model::Name;
use crate::oci::{Digest, WrittenReference};

/// SLSA Provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// The build type: a name, like the schemas' `$id`, for the specification in docs/BUILD-TYPE.md.
/// Bump its version on any change to what a field means.
pub const BUILD_TYPE: &str = "https://cookbook.invalid/build-types/image/v1";

/// `runDetails.builder.id` is this prefix, `@`, and cookbook's version.
pub const BUILDER_ID_PREFIX: &str = "https://cookbook.invalid/builder";

/// The `uri` scheme of a pinned base image in `resolvedDependencies`.
pub const BASE_URI_PREFIX: &str = "docker://";

/// The `uri` prefix of a container's sources (by its input hash) in `resolvedDependencies`.
pub const SOURCE_URI_PREFIX: &str = "cookbook:container/";

/// What one image was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The repository (no tag) and the image's manifest digest.
    pub subject: Subject,
    /// The cookbook's path relative to the repository root (or its file name).
    pub cookbook: String,
    pub container: Name,
    pub site: Option<Name>,
    /// The git commit of the cookbook's checkout (40 hex), when it is in a repository.
    pub commit: Option<String>,
    /// Pinned base images: reference as written, digest, pin source.
    pub bases: Vec<ResolvedBase>,
    /// The container's input hash (hex).
    pub input_hash: String,
    pub hash_version: u32,
    /// [`manifest_digest`] of the container's fingerprint.
    pub manifest_digest: Digest,
    /// `env!("CARGO_PKG_VERSION")` of the cookbook that built it.
    pub builder_version: String,
    pub metadata: Option<BuildMetadata>,
}

/// What a provenance statement claims, as `verify` compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenanceClaims {
    pub subjects: Vec<Subject>,
    pub build_type: String,
    pub container: String,
    pub commit: Option<String>,
    pub input_hash: String,
    pub hash_version: u32,
    /// Sorted.
    pub bases: Vec<ResolvedBase>,
    pub builder_id: String,
    /// The hash manifest's digest the sources entry names, if it names one.
    pub manifest_digest: Option<Digest>,
}

/// The digest of a container's hash manifest: sha256 of the RFC 8785 canonical JSON of the whole
/// document `cookbook explain CONTAINER --format json` prints (`input_hash` included).
///
/// explain prints the same document pretty and in declaration order; canonicalizing it gives
/// these bytes (`cookbook explain C | jq -cS . | sha256sum` for every manifest cookbook writes:
/// docs/BUILD-TYPE.md says when `jq -cS` and RFC 8785 could differ, and why they do not here).
pub fn manifest_digest(fp: &Fingerprint) -> Digest {
    Digest::sha256_of(&canonical(&fp.manifest()))
}

/// The statement's bytes: RFC 8785 canonical JSON, the same for the same inputs.
pub fn statement(p: &Provenance) -> Vec<u8> {
    canonical(&document(p))
}

fn document(p: &Provenance) -> Value {
    let mut external = Map::new();
    external.insert("cookbook".into(), json!(p.cookbook));
    external.insert("container".into(), json!(p.container.as_str()));
    if let Some(site) = &p.site {
        external.insert("site".into(), json!(site.as_str()));
    }
    if let Some(commit) = &p.commit {
        external.insert("commit".into(), json!(commit));
    }
    let mut bases = p.bases.clone();
    bases.sort();
    let mut dependencies: Vec<Value> = bases.iter().map(base_dependency).collect();
    dependencies.push(json!({
        "uri": format!("{SOURCE_URI_PREFIX}{}", p.container),
        "digest": {"sha256": p.input_hash},
        "annotations": {"hash_manifest": p.manifest_digest.as_str()},
    }));
    let mut run = Map::new();
    run.insert(
        "builder".into(),
        json!({"id": format!("{BUILDER_ID_PREFIX}@{}", p.builder_version)}),
    );
    if let Some(metadata) = &p.metadata {
        let mut m = Map::new();
        let fields = [
            ("invocationId", &metadata.invocation_id),
            ("startedOn", &metadata.started_on),
            ("finishedOn", &metadata.finished_on),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                m.insert(key.into(), json!(value));
            }
        }
        run.insert("metadata".into(), Value::Object(m));
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [p.subject],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {"hash_version": p.hash_version},
                "resolvedDependencies": dependencies,
            },
            "runDetails": run,
        },
    })
}

fn base_dependency(base: &ResolvedBase) -> Value {
    let mut d = Map::new();
    d.insert(
        "uri".into(),
        json!(format!("{BASE_URI_PREFIX}{}", base.reference)),
    );
    d.insert("digest".into(), json!(digest_set(&base.digest)));
    if let Some(source) = base.source {
        d.insert("annotations".into(), json!({"pin_source": source.as_str()}));
    }
    Value::Object(d)
}

/// Reads a provenance statement (at most [`super::MAX_STATEMENT_BYTES`]).
pub fn parse(bytes: &[u8]) -> Result<ProvenanceClaims, StatementError> {
    let (value, subjects) = read_statement(bytes, PREDICATE_TYPE)?;
    let build_type = str_at(&value, "/predicate/buildDefinition/buildType")?.to_owned();
    let container = str_at(
        &value,
        "/predicate/buildDefinition/externalParameters/container",
    )?
    .to_owned();
    let commit = match value.pointer("/predicate/buildDefinition/externalParameters/commit") {
        None | Some(Value::Null) => None,
        Some(_) => {
            let pointer = "/predicate/buildDefinition/externalParameters/commit";
            let text = str_at(&value, pointer)?;
            if !is_commit(text) {
                return Err(StatementError::field(
                    pointer,
                    "not a git commit (40 or 64 lowercase hex digits)",
                ));
            }
            Some(text.to_owned())
        }
    };
    let pointer = "/predicate/buildDefinition/internalParameters/hash_version";
    let hash_version = at(&value, pointer)?
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| StatementError::field(pointer, "not a hash version"))?;
    let builder_id = str_at(&value, "/predicate/runDetails/builder/id")?.to_owned();

    let mut bases = Vec::new();
    let mut source = None;
    let pointer = "/predicate/buildDefinition/resolvedDependencies";
    for (i, dependency) in array_at(&value, pointer)?.iter().enumerate() {
        let here = format!("{pointer}/{i}");
        let uri = str_at(dependency, "/uri")
            .map_err(|_| StatementError::field(format!("{here}/uri"), "missing or not a string"))?;
        if let Some(reference) = uri.strip_prefix(BASE_URI_PREFIX) {
            bases.push(read_base(dependency, reference, &here)?);
        } else if let Some(name) = uri.strip_prefix(SOURCE_URI_PREFIX) {
            if name != container {
                return Err(StatementError::field(
                    format!("{here}/uri"),
                    format!(
                        "names the sources of `{name}`, but the statement is about `{container}`"
                    ),
                ));
            }
            if source.is_some() {
                return Err(StatementError::field(
                    format!("{here}/uri"),
                    "a second sources entry",
                ));
            }
            source = Some(read_source(dependency, &here)?);
        }
        // Other dependencies are not cookbook's to judge.
    }
    let (input_hash, manifest_digest) = source.ok_or_else(|| {
        StatementError::field(
            pointer,
            format!("no `{SOURCE_URI_PREFIX}{container}` entry: the statement names no sources"),
        )
    })?;
    bases.sort();
    Ok(ProvenanceClaims {
        subjects,
        build_type,
        container,
        commit,
        input_hash,
        hash_version,
        bases,
        builder_id,
        manifest_digest,
    })
}

fn is_commit(text: &str) -> bool {
    matches!(text.len(), 40 | 64)
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn sha256_digest(dependency: &Value, here: &str) -> Result<Digest, StatementError> {
    let pointer = format!("{here}/digest/sha256");
    let hex = dependency
        .pointer("/digest/sha256")
        .and_then(Value::as_str)
        .ok_or_else(|| StatementError::field(&pointer, "missing or not a string"))?;
    Digest::parse(&format!("sha256:{hex}"))
        .map_err(|_| StatementError::field(pointer, "not 64 lowercase hex digits"))
}

fn read_base(
    dependency: &Value,
    reference: &str,
    here: &str,
) -> Result<ResolvedBase, StatementError> {
    let reference = WrittenReference::parse(reference).map_err(|e| {
        StatementError::field(
            format!("{here}/uri"),
            format!(
                "not an image reference: {}",
                crate::oci::reference_reason(&e)
            ),
        )
    })?;
    let digest = sha256_digest(dependency, here)?;
    let source = match dependency.pointer("/annotations/pin_source") {
        None => None,
        Some(v) => Some(v.as_str().and_then(PinSource::parse).ok_or_else(|| {
            StatementError::field(
                format!("{here}/annotations/pin_source"),
                "not registry, engine or reference",
            )
        })?),
    };
    Ok(ResolvedBase {
        reference,
        digest,
        source,
    })
}

fn read_source(dependency: &Value, here: &str) -> Result<(String, Option<Digest>), StatementError> {
    let hex = sha256_digest(dependency, here)?;
    let input_hash = super::sha256_hex(&hex).to_owned();
    debug_assert!(InputHash::parse(&input_hash).is_some());
    let manifest = match dependency.pointer("/annotations/hash_manifest") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .and_then(|t| Digest::parse(t).ok())
                .ok_or_else(|| {
                    StatementError::field(
                        format!("{here}/annotations/hash_manifest"),
                        "not a digest",
                    )
                })?,
        ),
    };
    Ok((input_hash, manifest))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::attest::sbom::tests::golden;

    fn d(c: &str) -> Digest {
        Digest::parse(&format!("sha256:{}", c.repeat(64))).unwrap()
    }

    /// The fixed provenance of the golden vector: every field set.
    pub(crate) fn fixed() -> Provenance {
        Provenance {
            subject: Subject {
                name: "127.0.0.1:5000/shop/api".into(),
                digest: d("1"),
            },
            cookbook: "cookbook.yaml".into(),
            container: Name::parse("api").unwrap(),
            site: Some(Name::parse("eu").unwrap()),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            bases: vec![
                ResolvedBase {
                    reference: WrittenReference::parse("python:3.12-slim").unwrap(),
                    digest: d("b"),
                    source: Some(PinSource::Registry),
                },
                ResolvedBase {
                    reference: WrittenReference::parse("127.0.0.1:5000/base/builder:1").unwrap(),
                    digest: d("a"),
                    source: Some(PinSource::Registry),
                },
            ],
            input_hash: "2".repeat(64),
            hash_version: 2,
            manifest_digest: d("3"),
            builder_version: "0.1.0".into(),
            metadata: Some(BuildMetadata {
                invocation_id: Some("0000000000000000-api".into()),
                started_on: Some("2026-01-02T03:04:05Z".into()),
                finished_on: Some("2026-01-02T03:04:09Z".into()),
            }),
        }
    }

    #[test]
    fn the_statement_matches_its_golden_vector() {
        golden("provenance.json", &statement(&fixed()));
    }

    #[test]
    fn the_bytes_do_not_depend_on_the_order_bases_are_given_in() {
        let mut p = fixed();
        let before = statement(&p);
        p.bases.reverse();
        assert_eq!(statement(&p), before);
    }

    #[test]
    fn a_statement_reads_back_as_what_it_claims() {
        let p = fixed();
        let claims = parse(&statement(&p)).unwrap();
        let mut bases = p.bases.clone();
        bases.sort();
        assert_eq!(
            claims,
            ProvenanceClaims {
                subjects: vec![p.subject.clone()],
                build_type: BUILD_TYPE.into(),
                container: "api".into(),
                commit: p.commit.clone(),
                input_hash: p.input_hash.clone(),
                hash_version: 2,
                bases,
                builder_id: "https://cookbook.invalid/builder@0.1.0".into(),
                manifest_digest: Some(d("3")),
            }
        );
    }

    #[test]
    fn optional_fields_are_left_out_not_null() {
        let p = Provenance {
            site: None,
            commit: None,
            metadata: None,
            bases: vec![],
            ..fixed()
        };
        let text = String::from_utf8(statement(&p)).unwrap();
        assert!(!text.contains("null"), "{text}");
        assert!(!text.contains("\"site\"") && !text.contains("\"metadata\""));
        let claims = parse(text.as_bytes()).unwrap();
        assert_eq!(claims.commit, None);
        assert!(claims.bases.is_empty());
    }

    #[test]
    fn extra_fields_are_tolerated() {
        let mut value: Value = serde_json::from_slice(&statement(&fixed())).unwrap();
        value["predicate"]["runDetails"]["byproducts"] = json!([{"name": "log"}]);
        value["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array_mut()
            .unwrap()
            .push(json!({"uri": "git+https://example.com/x", "digest": {"sha1": "00"}}));
        value["extra"] = json!(true);
        let claims = parse(&serde_json::to_vec(&value).unwrap()).unwrap();
        assert_eq!(claims.input_hash, "2".repeat(64));
    }

    /// Each field `verify` reads, made wrong, is refused with its JSON pointer.
    #[test]
    fn a_bad_field_is_named_by_its_pointer() {
        let statement = statement(&fixed());
        let cases: [(&str, Value, &str); 7] = [
            (
                "/predicateType",
                json!("https://slsa.dev/provenance/v0.2"),
                "/predicateType",
            ),
            (
                "/predicate/buildDefinition/externalParameters/commit",
                json!("HEAD"),
                "/predicate/buildDefinition/externalParameters/commit",
            ),
            (
                "/predicate/buildDefinition/internalParameters/hash_version",
                json!(-1),
                "/predicate/buildDefinition/internalParameters/hash_version",
            ),
            (
                "/predicate/buildDefinition/resolvedDependencies/0/uri",
                json!("docker://UPPER/Case"),
                "/predicate/buildDefinition/resolvedDependencies/0/uri",
            ),
            (
                "/predicate/buildDefinition/resolvedDependencies/1/digest",
                json!({"sha256": "zz"}),
                "/predicate/buildDefinition/resolvedDependencies/1/digest/sha256",
            ),
            (
                "/predicate/buildDefinition/resolvedDependencies/2/uri",
                json!("cookbook:container/web"),
                "/predicate/buildDefinition/resolvedDependencies/2/uri",
            ),
            ("/subject/0/digest", json!({"sha256": "1"}), "/subject/0"),
        ];
        for (pointer, bad, named) in cases {
            let mut value: Value = serde_json::from_slice(&statement).unwrap();
            *value.pointer_mut(pointer).unwrap() = bad;
            let e = parse(&serde_json::to_vec(&value).unwrap()).unwrap_err();
            assert!(
                e.to_string().contains(&format!("`{named}`")),
                "{pointer}: {e}"
            );
        }
        let mut value: Value = serde_json::from_slice(&statement).unwrap();
        value["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array_mut()
            .unwrap()
            .pop();
        let e = parse(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(e.to_string().contains("names no sources"), "{e}");
    }
}
