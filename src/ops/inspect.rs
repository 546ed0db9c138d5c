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
    /// Containers whose context holds files git ignores ([`GitIgnored`]; none outside git).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub git_ignored: Vec<GitIgnored>,
    /// The same as warnings located in the cookbook, for the CLI to show.
    #[serde(skip)]
    pub warnings: Vec<crate::diagnostic::Diagnostic>,
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

/// `plan [--site SITE] [--strict]`: with `strict`, a context holding git-ignored files is an
/// error ([`check_git_ignored`]).
pub fn plan(ws: &Workspace, site: Option<&str>, strict: bool) -> Result<PlanReport, Error> {
    let plan = ws.site_plan(site)?;
    let ignored = check_git_ignored(ws, &plan, None, strict)?;
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
        git_ignored: ignored.found,
        warnings: ignored.diagnostics,
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
    /// Containers whose context holds files git ignores ([`GitIgnored`]; none outside git).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub git_ignored: Vec<GitIgnored>,
    /// The same as warnings located in the cookbook, for the CLI to show.
    #[serde(skip)]
    pub warnings: Vec<crate::diagnostic::Diagnostic>,
}

/// `hash`: the containers named (all without names) and what they need, fingerprinted with the
/// lock's pins; with `strict`, a context holding git-ignored files is an error
/// ([`check_git_ignored`]).
pub fn hash(ws: &Workspace, containers: &[String], strict: bool) -> Result<HashReport, Error> {
    let wanted = ws.containers_named(containers)?;
    let plan = if wanted.is_empty() {
        ws.plan.clone()
    } else {
        ws.plan.restrict(&wanted)
    };
    let fingerprints = ws.fingerprints(&plan)?;
    let ignored = check_git_ignored(ws, &plan, Some(&fingerprints), strict)?;
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
        git_ignored: ignored.found,
        warnings: ignored.diagnostics,
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

/// At most this many git-ignored paths are named per context; the rest are counted.
const IGNORED_SHOWN: usize = 8;

/// Files a container's context holds that git ignores and `.dockerignore` does not exclude:
/// present on this machine, absent from a fresh clone (CI), so they move the input hash from one
/// machine to the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitIgnored {
    pub container: Name,
    /// The directory listed, as the cookbook names it (`.` for the cookbook's own).
    pub directory: String,
    /// Whether git ignores the directory itself (`dist/app` under an ignored `dist/`): the whole
    /// context is missing from a fresh clone; its one path is `./`.
    pub context_ignored: bool,
    /// The ignored paths in it, relative to it (a directory ends in `/` and counts its files);
    /// at most a few, `more` counts the others.
    pub paths: Vec<IgnoredPath>,
    /// Ignored paths not named.
    pub more: usize,
    /// Files of the context git ignores, in all.
    pub files: usize,
    /// The one-line fix: what to add to which `.dockerignore` (or, for an ignored context, to
    /// build it in CI or stop ignoring it).
    pub fix: String,
}

/// One git-ignored path of a context: a file, or a directory (`node_modules/`) and how many of
/// its files the context holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IgnoredPath {
    pub path: String,
    pub files: usize,
}

/// What the check of git-ignored files found: each finding, and each as a located warning (an
/// error with `--strict`) for the CLI's diagnostic rendering.
#[derive(Debug, Default)]
pub struct IgnoredCheck {
    pub found: Vec<GitIgnored>,
    pub diagnostics: Vec<crate::diagnostic::Diagnostic>,
}

/// The git-ignored files in the contexts of `plan`'s containers ([`git_ignored`]), listed for
/// the purpose when `prints` does not have them; `strict`: any is an error (exit 2), each
/// finding a located diagnostic naming the container, the paths and the fix. A cookbook outside
/// any git work tree has nothing to check.
pub fn check_git_ignored(
    ws: &Workspace,
    plan: &Plan,
    prints: Option<&BTreeMap<Name, Fingerprint>>,
    strict: bool,
) -> Result<IgnoredCheck, Error> {
    if !crate::git::ignored::in_worktree(ws.base_dir()) {
        return Ok(IgnoredCheck::default());
    }
    let listed;
    let prints = match prints {
        Some(prints) => prints,
        None => {
            listed = ws.fingerprints(plan)?;
            &listed
        }
    };
    let found = git_ignored(ws.path(), &ws.cookbook, prints);
    let diagnostics = ignored_diagnostics(ws, &found, strict);
    if strict && !diagnostics.is_empty() {
        return Err(Error::Invalid {
            file: ws.file.label.clone(),
            diagnostics,
        });
    }
    Ok(IgnoredCheck { found, diagnostics })
}

/// Each container of `prints` whose context holds files that git ignores and `.dockerignore`
/// does not exclude, from the listing the fingerprints already have: only its untracked entries
/// are asked of git ([`crate::git::Worktree::ignored_among`]), so the cost follows them, not the
/// repository. None outside a git work tree, or when git cannot tell (a repository it cannot
/// read: the hash does not depend on the answer).
pub fn git_ignored(
    file: &Path,
    cookbook: &crate::model::Cookbook,
    prints: &BTreeMap<Name, Fingerprint>,
) -> Vec<GitIgnored> {
    let base = crate::load::base_dir(file);
    if !crate::git::ignored::in_worktree(base) {
        return Vec::new();
    }
    let Some(worktree) = crate::git::Worktree::discover(base) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (name, print) in prints {
        let plan = crate::context::plan(cookbook, name, None);
        for tree in &plan.trees {
            let files = tree_files(&plan, tree, &print.entries);
            let dir = tree.source.under(base);
            let ignored = worktree.ignored_among(&dir, files).unwrap_or_default();
            found.extend(finding(name, tree, ignored));
        }
    }
    found
}

/// The entries of `entries` (sorted by path) that come from `tree`, relative to it: not what
/// cookbook places itself (a generated Dockerfile, a Dockerfile from outside the context), not
/// what Docker always sends (the Dockerfile, `.dockerignore`: no ignore file removes them).
fn tree_files<'e>(
    plan: &crate::context::ContextPlan,
    tree: &'e crate::context::Tree,
    entries: &'e [crate::context::Entry],
) -> impl Iterator<Item = &'e str> + 'e {
    let placed: Vec<String> = plan
        .files
        .iter()
        .map(|(name, _)| name.clone())
        .chain(plan.generated.iter().map(|(name, _)| name.clone()))
        .collect();
    let prefix = match tree.prefix.as_str() {
        "" => String::new(),
        prefix => format!("{prefix}/"),
    };
    let start = entries.partition_point(|e| e.path.as_str() < prefix.as_str());
    entries[start..]
        .iter()
        .take_while(move |e| e.path.starts_with(&prefix))
        .filter(move |e| !placed.contains(&e.path))
        .map(move |e| &e.path[tree.prefix.len() + usize::from(!tree.prefix.is_empty())..])
        .filter(move |rel| !tree.always_keep.iter().any(|k| k == rel))
}

/// What git ignores among one tree's files, as a finding: the paths named (at most a few), and
/// the fix — a `.dockerignore` line, or, when the tree's directory is ignored as a whole, to
/// make it in CI or stop ignoring it (no `.dockerignore` line brings back a missing context).
fn finding(
    name: &Name,
    tree: &crate::context::Tree,
    ignored: Vec<crate::git::ignored::Ignored>,
) -> Option<GitIgnored> {
    if ignored.is_empty() {
        return None;
    }
    let files = ignored.iter().map(|i| i.files).sum();
    let whole = ignored.iter().any(|i| i.path.is_empty());
    let mut paths: Vec<IgnoredPath> = ignored
        .into_iter()
        .map(|i| IgnoredPath {
            path: if i.path.is_empty() {
                "./".to_owned()
            } else {
                i.path
            },
            files: i.files,
        })
        .collect();
    let more = paths.len().saturating_sub(IGNORED_SHOWN);
    paths.truncate(IGNORED_SHOWN);
    let (directory, dockerignore) = match tree.source.is_root() {
        true => (".".to_owned(), ".dockerignore".to_owned()),
        false => {
            let dir = tree.source.as_str();
            (dir.to_owned(), format!("{dir}/.dockerignore"))
        }
    };
    let fix = match whole {
        true => format!(
            "`{directory}` is ignored by git, so a fresh clone has none of it: build it in CI \
             before apply, or stop ignoring it (a .dockerignore line cannot fix this)"
        ),
        false => {
            let patterns: Vec<String> = paths.iter().map(|p| format!("\"{}\"", p.path)).collect();
            let others = match more {
                0 => String::new(),
                n => {
                    format!(" (and the {n} other path(s) `git status --ignored {directory}` lists)")
                }
            };
            format!("add {} to {dockerignore}{others}", patterns.join(", "))
        }
    };
    Some(GitIgnored {
        container: name.clone(),
        directory,
        context_ignored: whole,
        paths,
        more,
        files,
        fix,
    })
}

/// Each finding as a diagnostic at its container's key in the cookbook: a warning, or an error
/// when `strict`.
pub fn ignored_diagnostics(
    ws: &Workspace,
    found: &[GitIgnored],
    strict: bool,
) -> Vec<crate::diagnostic::Diagnostic> {
    if found.is_empty() {
        return Vec::new();
    }
    let sources = container_sources(ws);
    found
        .iter()
        .map(|f| {
            let mut d = crate::diagnostic::Diagnostic::new(
                "context/git-ignored",
                crate::diagnostic::pointer_push("/containers", f.container.as_str()),
                ignored_message(f),
            )
            .at_key()
            .with_help(f.fix.clone());
            if !strict {
                d = d.warning();
            }
            match sources.get(&f.container) {
                Some(source) => d.located(source.location),
                None => d,
            }
        })
        .collect()
}

/// `its context (services/web) holds 1,235 files git ignores that .dockerignore does not
/// exclude: node_modules/ (1,234 files), app.pyc; …`, or `its context (dist/app) is ignored by
/// git: …` when the directory itself is; the diagnostic's pointer names the container.
fn ignored_message(f: &GitIgnored) -> String {
    if f.context_ignored {
        return format!(
            "its context ({}) is ignored by git: its {} file{} are absent from a \
             fresh clone (CI), where the context is missing or different",
            f.directory,
            thousands(f.files),
            plural(f.files)
        );
    }
    let mut named: Vec<String> = f
        .paths
        .iter()
        .map(|p| match p.path.ends_with('/') {
            true => format!(
                "{} ({} file{})",
                p.path,
                thousands(p.files),
                plural(p.files)
            ),
            false => p.path.clone(),
        })
        .collect();
    if f.more > 0 {
        named.push(format!("and {} more", f.more));
    }
    format!(
        "its context ({}) holds {} file{} git ignores that .dockerignore does not \
         exclude: {}; a fresh clone (CI) does not have them, so its input hash differs there",
        f.directory,
        thousands(f.files),
        plural(f.files),
        named.join(", ")
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
