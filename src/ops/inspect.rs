//! The commands that look at a cookbook and change nothing: `validate`, `plan`, `hash`,
//! `explain`, `context` (which writes the one tar it is asked for), and `schema`.
//!
//! Each takes the [`Workspace`] the caller opened (and showed the warnings of) and returns a
//! report whose serialization is the command's `--format json` document.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::report::{ErrorEntry, Verdict};
use super::Workspace;
use crate::diagnostic::Location;
use crate::error::Error;
use crate::graph::Plan;
use crate::hash::{self, BasePin, Fingerprint, HashManifest};
use crate::model::Name;

/// `validate`: the cookbook passed every check; what it holds.
#[derive(Debug, Serialize)]
pub struct ValidateReport {
    pub applications: usize,
    pub containers: usize,
    /// Always empty: a cookbook with problems fails with an error document instead.
    pub errors: Vec<ErrorEntry>,
    /// The cookbook as diagnostics name it (`<stdin>` for standard input).
    pub file: String,
    pub manifest_version: String,
    pub result: Verdict,
    pub sites: usize,
    pub waves: usize,
}

/// `validate`: opening the workspace did the checking; this counts what passed.
pub fn validate(ws: &Workspace) -> ValidateReport {
    ValidateReport {
        applications: ws.cookbook.applications.len(),
        containers: ws.cookbook.containers.len(),
        errors: Vec::new(),
        file: ws.file.label.clone(),
        manifest_version: ws.cookbook.manifest_version.to_string(),
        result: Verdict::Ok,
        sites: ws.cookbook.sites.len(),
        waves: ws.plan.waves().len(),
    }
}

/// Where a container is written, for a report that points at lines (`--format github`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSource {
    /// Its key in the cookbook (`"api": {`).
    pub location: Location,
    /// The Dockerfile it is built from (the cookbook's directory joined with its `dockerfile`),
    /// none for a generated container.
    pub dockerfile: Option<PathBuf>,
}

/// Where each container of the workspace's cookbook is written. The text is read again (a
/// loaded cookbook keeps no text): when it cannot be, or no longer has the container, that
/// container has no entry and a report names it without a line.
pub fn container_sources(ws: &Workspace) -> BTreeMap<Name, ContainerSource> {
    use crate::model::ContainerKind;
    let bytes = match ws.file.bytes {
        Some(bytes) => Some(bytes.to_vec()),
        None => crate::context::file::read_regular(ws.path(), crate::load::COOKBOOK_MAX)
            .ok()
            .flatten(),
    };
    let Some(bytes) = bytes else {
        return BTreeMap::new();
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let text = String::from_utf8_lossy(bytes);
    let spans = crate::schema::span::SpanIndex::scan(&text);
    let mut sources = BTreeMap::new();
    for (name, container) in &ws.cookbook.containers {
        let pointer = crate::diagnostic::pointer_push("/containers", name.as_str());
        let Some(span) = spans.span(&pointer) else {
            continue;
        };
        let offset = span.key.unwrap_or(span.value);
        let dockerfile = match &container.kind {
            ContainerKind::Dockerfile(d) => Some(d.dockerfile.under(ws.base_dir())),
            ContainerKind::Generated(_) => None,
        };
        sources.insert(
            name.clone(),
            ContainerSource {
                location: spans.location(&text, offset),
                dockerfile,
            },
        );
    }
    sources
}

/// `plan`: the waves, each container's needs, and how each external base is pinned.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    /// Each external base image, by the reference the cookbook writes.
    pub bases: BTreeMap<String, PlannedBase>,
    pub containers: BTreeMap<Name, PlannedContainer>,
    /// The plan itself, for the text and Graphviz renderings.
    #[serde(skip)]
    pub plan: Plan,
    pub waves: Vec<Vec<Name>>,
    /// The pool `apply` spreads builds over (`packaging.builders`; absent without one). Which
    /// builds each takes is decided at run time, by load (`apply --dry-run` shows a prediction,
    /// `apply --format json` what happened): a plan connects to nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub builders: Vec<PlannedBuilder>,
}

/// One builder of `packaging.builders`, as the cookbook names it.
#[derive(Debug, Serialize)]
pub struct PlannedBuilder {
    pub name: String,
    /// Its host, or `context NAME`.
    pub engine: String,
}

#[derive(Debug, Serialize)]
pub struct PlannedBase {
    /// The containers built on it.
    pub containers: Vec<Name>,
    /// What the lock pins it to: none until apply pins it.
    pub pinned: Option<BasePin>,
}

#[derive(Debug, Serialize)]
pub struct PlannedContainer {
    /// The containers it is built FROM.
    pub build_needs: Vec<Name>,
    /// The containers deployed before it (`depends_on`).
    pub runtime_needs: Vec<Name>,
    /// Its wave, 1-based.
    pub wave: usize,
}

impl PlanReport {
    /// The waves as text, one container a line with its needs.
    pub fn text(&self) -> String {
        crate::graph::render_text(&self.plan)
    }

    /// The plan as a Graphviz graph.
    pub fn dot(&self) -> String {
        crate::graph::render_dot(&self.plan)
    }
}

/// `plan [--site SITE]`.
pub fn plan(ws: &Workspace, site: Option<&str>) -> Result<PlanReport, Error> {
    let plan = ws.site_plan(site)?;
    let pins = ws.pins()?;
    let dockerfiles = crate::apply::pin::dockerfile_bases(&ws.cookbook, ws.base_dir())?;
    let bases = crate::apply::pin::external_bases(&ws.cookbook, &plan, &dockerfiles)
        .into_iter()
        .map(|(reference, containers)| {
            let pinned = pins.get(reference).cloned();
            (reference.to_string(), PlannedBase { containers, pinned })
        })
        .collect();
    let mut containers = BTreeMap::new();
    for (i, wave) in plan.waves().iter().enumerate() {
        for name in wave {
            let needs = plan.needs(name.as_str());
            let named = |build: bool| -> Vec<Name> {
                let kind = |k: &crate::graph::EdgeKinds| if build { k.build } else { k.runtime };
                needs
                    .iter()
                    .filter(|(_, k)| kind(k))
                    .map(|(n, _)| (*n).clone())
                    .collect()
            };
            let planned = PlannedContainer {
                build_needs: named(true),
                runtime_needs: named(false),
                wave: i + 1,
            };
            containers.insert(name.clone(), planned);
        }
    }
    let builders = ws
        .cookbook
        .packaging
        .builders
        .iter()
        .map(|b| PlannedBuilder {
            name: b.name.clone(),
            engine: match (&b.engine.context, &b.engine.host) {
                (Some(context), _) => format!("context {context}"),
                _ => b.engine.describe(),
            },
        })
        .collect();
    Ok(PlanReport {
        bases,
        containers,
        waves: plan.waves().to_vec(),
        plan,
        builders,
    })
}

/// `hash [CONTAINER…]`: each container's input hash, and which bases are not pinned yet.
#[derive(Debug, Serialize)]
pub struct HashReport {
    pub hash_version: u32,
    pub input_hashes: BTreeMap<Name, String>,
    /// Container → the base reference it names that the lock does not pin yet.
    pub not_pinned: BTreeMap<Name, String>,
    /// The containers in the order they were asked for, each once (all, sorted, by default).
    #[serde(skip)]
    pub order: Vec<Name>,
    /// The fingerprints behind the hashes: one allocation per file, which a caller about to exit
    /// may leak rather than free one by one (a tenth of a warm run's time).
    #[serde(skip)]
    pub fingerprints: BTreeMap<Name, Fingerprint>,
}

/// `hash`: the containers named (all without names) and what they need, fingerprinted with the
/// lock's pins.
pub fn hash(ws: &Workspace, containers: &[String]) -> Result<HashReport, Error> {
    let wanted = ws.containers_named(containers)?;
    let plan = if wanted.is_empty() {
        ws.plan.clone()
    } else {
        ws.plan.restrict(&wanted)
    };
    let fingerprints = ws.fingerprints(&plan)?;
    // Each container once, in the order first named (`hash api api` prints api once).
    let mut seen = BTreeSet::new();
    let order: Vec<Name> = if wanted.is_empty() {
        fingerprints.keys().cloned().collect()
    } else {
        wanted
            .into_iter()
            .filter(|n| seen.insert(n.clone()))
            .collect()
    };
    let input_hashes = order
        .iter()
        .map(|n| (n.clone(), fingerprints[n].input_hash().to_owned()))
        .collect();
    let not_pinned = order
        .iter()
        .filter_map(|n| Some((n.clone(), fingerprints[n].unpinned()?.to_string())))
        .collect();
    Ok(HashReport {
        hash_version: hash::HASH_VERSION,
        input_hashes,
        not_pinned,
        order,
        fingerprints,
    })
}

/// `explain CONTAINER`: the hash manifest, which is the whole document.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct ExplainReport {
    pub manifest: HashManifest,
    /// The container's external base when the lock does not pin it yet (its hash changes then).
    #[serde(skip)]
    pub unpinned_base: Option<String>,
}

/// `explain CONTAINER`.
pub fn explain(ws: &Workspace, container: &str) -> Result<ExplainReport, Error> {
    let name = ws.containers_named(&[container.to_owned()])?.remove(0);
    let prints = ws.fingerprints(&ws.plan.restrict([&name]))?;
    let print = &prints[&name];
    Ok(ExplainReport {
        manifest: print.manifest(),
        unpinned_base: print.unpinned().map(ToString::to_string),
    })
}

/// Where `context` writes the tar.
pub enum ContextSink<'a> {
    /// A file, or a directory to write `CONTAINER.tar` in.
    Path(&'a Path),
    /// A stream (standard output), written as the tar is produced.
    Stream(&'a mut dyn Write),
}

/// `context CONTAINER -o PATH`: what was written.
#[derive(Debug, Serialize)]
pub struct ContextReport {
    /// Bytes of file content (the tar's headers aside).
    pub bytes: u64,
    pub container: Name,
    pub entries: usize,
    pub input_hash: String,
    /// The file written (`-` for a stream).
    pub output: String,
}

/// `context CONTAINER`: the deterministic build context, as `apply` would send it.
pub fn context(
    ws: &Workspace,
    container: &str,
    sink: ContextSink<'_>,
) -> Result<ContextReport, Error> {
    let name = ws.containers_named(&[container.to_owned()])?.remove(0);
    // The destination is checked before anything is hashed.
    let target = match sink {
        ContextSink::Path(path) => Target::File(tar_path(path, &name)?),
        ContextSink::Stream(out) => Target::Stream(out),
    };
    let prints = ws.fingerprints(&ws.plan.restrict([&name]))?;
    let fp = &prints[&name];
    let output = match target {
        Target::Stream(out) => {
            crate::context::tar::write(&fp.entries, &fp.digests, std::io::BufWriter::new(out))?;
            "-".to_owned()
        }
        Target::File(path) => {
            crate::context::tar::write_file(&fp.entries, &fp.digests, &path, true)?;
            path.display().to_string()
        }
    };
    Ok(ContextReport {
        bytes: fp.entries.iter().map(|e| e.size).sum(),
        container: name,
        entries: fp.entries.len(),
        input_hash: fp.input_hash().to_owned(),
        output,
    })
}

enum Target<'a> {
    File(PathBuf),
    Stream(&'a mut dyn Write),
}

/// The tar's path: `output`, or `CONTAINER.tar` in it when it is a directory; its directory must
/// exist.
fn tar_path(output: &Path, name: &Name) -> Result<PathBuf, Error> {
    let output = if output.is_dir() {
        output.join(format!("{name}.tar"))
    } else {
        output.to_path_buf()
    };
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            let why = if parent.exists() {
                format!("{} is not a directory", parent.display())
            } else {
                format!("the directory {} does not exist", parent.display())
            };
            return Err(Error::Usage {
                message: format!("cannot write {}: {why}", output.display()),
                help: Some("create it first, or name an existing directory".to_owned()),
            });
        }
    }
    Ok(output)
}

/// `schema [--version V]`: the bundled JSON Schema of a format version (the latest by default).
pub fn schema(version: Option<&str>) -> Result<&'static str, Error> {
    use crate::schema;
    match version {
        None => Ok(schema::latest().schema),
        Some(v) => schema::VERSIONS
            .iter()
            .find(|f| f.name == v)
            .map(|f| f.schema)
            .ok_or_else(|| Error::Usage {
                message: format!("unknown format version `{v}`"),
                help: Some(format!("versions: {}", schema::supported_names())),
            }),
    }
}
