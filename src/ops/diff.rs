//! `diff`: why did a hash change?
//!
//! Two forms: [`manifests`] compares two saved `explain` documents; [`against_revision`] compares
//! what a git revision's cookbook hashes with what the working tree hashes now, without writing
//! either manifest to disk. Differences are the normal answer, not an error: the report counts
//! them ([`DiffReport::differences`]) and the caller decides what they mean.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{CookbookFile, Workspace};
use crate::error::Error;
use crate::git::revision;
use crate::hash::{self, Change, Fingerprint, HashManifest};
use crate::model::Name;
use crate::state::lock::Lock;
use crate::state::stat_cache::StatCache;
use crate::verify::VerifyError;

/// `diff`'s document.
#[derive(Debug, Serialize)]
pub struct DiffReport {
    pub containers: Vec<ContainerDiff>,
    pub result: DiffResult,
    /// The revision compared with the working tree (none for two files).
    pub revision: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffResult {
    Identical,
    Different,
}

/// One container's comparison.
#[derive(Debug, Serialize)]
pub struct ContainerDiff {
    pub changes: Vec<ChangeReport>,
    pub container: String,
    /// The input hash before (none: the container was added).
    pub from: Option<String>,
    pub identical: bool,
    /// The input hash after (none: the container was removed).
    pub to: Option<String>,
}

/// One change, as structured fields beside its message. A field a kind of change does not have
/// is left out; one it has but is empty (`from` of an added value) is `null`.
#[derive(Debug, Serialize)]
pub struct ChangeReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    pub kind: ChangeKind,
    /// The change in words.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
    /// For a changed text (a Dockerfile, a generated recipe, run commands): a unified line diff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unified_diff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    HashVersion,
    Container,
    FileAdded,
    FileRemoved,
    FileChanged,
    Recipe,
    /// A parent's (a `container:` base's) hash.
    Parent,
}

impl DiffReport {
    fn new(containers: Vec<ContainerDiff>, revision: Option<&str>) -> Self {
        let differ = containers.iter().any(|c| !c.identical);
        DiffReport {
            containers,
            result: if differ {
                DiffResult::Different
            } else {
                DiffResult::Identical
            },
            revision: revision.map(str::to_owned),
        }
    }

    /// How many differences were found: each change, and a container added or removed.
    pub fn differences(&self) -> usize {
        self.containers
            .iter()
            .filter(|c| !c.identical)
            .map(|c| c.changes.len().max(1))
            .sum()
    }
}

impl ContainerDiff {
    fn new(container: String, from: Option<&HashManifest>, to: Option<&HashManifest>) -> Self {
        let changes: Vec<ChangeReport> = match (from, to) {
            (Some(a), Some(b)) => hash::diff(a, b).iter().map(ChangeReport::new).collect(),
            _ => Vec::new(),
        };
        let (from, to) = (
            from.map(|m| m.input_hash.clone()),
            to.map(|m| m.input_hash.clone()),
        );
        ContainerDiff {
            identical: changes.is_empty() && from == to,
            changes,
            container,
            from,
            to,
        }
    }
}

impl ChangeReport {
    fn new(change: &Change) -> Self {
        let mut report = ChangeReport {
            from: None,
            kind: ChangeKind::Recipe,
            message: change.to_string(),
            name: None,
            path: None,
            pointer: None,
            to: None,
            unified_diff: None,
            what: None,
        };
        let value = |v: &Option<Value>| Some(v.clone().unwrap_or(Value::Null));
        let text = |v: &Option<String>| Some(v.clone().map_or(Value::Null, Value::String));
        match change {
            Change::HashVersion { from, to } => {
                report.kind = ChangeKind::HashVersion;
                (report.from, report.to) = (Some((*from).into()), Some((*to).into()));
            }
            Change::Container { from, to } => {
                report.kind = ChangeKind::Container;
                (report.from, report.to) = (Some(from.as_str().into()), Some(to.as_str().into()));
            }
            Change::FileAdded { path } | Change::FileRemoved { path } => {
                report.kind = match change {
                    Change::FileAdded { .. } => ChangeKind::FileAdded,
                    _ => ChangeKind::FileRemoved,
                };
                report.path = Some(path.clone());
            }
            Change::FileChanged { path, what } => {
                report.kind = ChangeKind::FileChanged;
                (report.path, report.what) = (Some(path.clone()), Some(*what));
            }
            Change::Recipe { pointer, from, to } => {
                report.kind = ChangeKind::Recipe;
                report.pointer = Some(pointer.clone());
                (report.from, report.to) = (value(from), value(to));
                report.unified_diff = texts(change).map(|(a, b)| unified(a, b));
            }
            Change::Dependency { name, from, to } => {
                report.kind = ChangeKind::Parent;
                report.name = Some(name.clone());
                (report.from, report.to) = (text(from), text(to));
            }
        }
        report
    }
}

/// Compares two `explain` documents.
pub fn manifests(before: &Path, after: &Path) -> Result<DiffReport, Error> {
    let (a, b) = (read_manifest(before)?, read_manifest(after)?);
    let compared = ContainerDiff::new(b.container.clone(), Some(&a), Some(&b));
    Ok(DiffReport::new(vec![compared], None))
}

/// Compares every container named (all without names, on either side) as hashed at `rev` with
/// the working tree `ws`.
pub fn against_revision(
    ws: &Workspace,
    rev: &str,
    containers: &[String],
) -> Result<DiffReport, Error> {
    let checkout = revision::checkout(ws.path(), rev).map_err(VerifyError::from)?;
    let then = Workspace::open_as(
        CookbookFile {
            path: checkout.cookbook_file.clone(),
            label: format!("{rev}:{}", checkout.relative_path),
            bytes: None,
        },
        // Named as the working copy is, not after the temporary checkout's directory.
        crate::load::directory_name(ws.base_dir()).as_deref(),
    )?;
    let names = names_compared(ws, &then, containers)?;
    let after = manifests_of(&ws.fingerprints(&ws.plan)?);
    let before = manifests_of(&checkout_fingerprints(&then)?);
    let mut seen = BTreeSet::new();
    let compared = names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .map(|name| {
            let (a, b) = (before.get(&name), after.get(&name));
            ContainerDiff::new(name, a, b)
        })
        .collect();
    Ok(DiffReport::new(compared, Some(rev)))
}

/// The containers to compare: those named, each of which must exist on one side at least, or
/// every container of either side.
fn names_compared(
    now: &Workspace,
    then: &Workspace,
    named: &[String],
) -> Result<Vec<String>, Error> {
    let (now_c, then_c) = (&now.cookbook.containers, &then.cookbook.containers);
    if named.is_empty() {
        let all: BTreeSet<String> = now_c
            .keys()
            .chain(then_c.keys())
            .map(Name::to_string)
            .collect();
        return Ok(all.into_iter().collect());
    }
    for n in named {
        if !now_c.contains_key(n.as_str()) && !then_c.contains_key(n.as_str()) {
            now.containers_named(std::slice::from_ref(n))?;
        }
    }
    Ok(named.to_vec())
}

/// A revision's fingerprints, under its own lock's pins (a base re-pinned since then is one of
/// the differences; a malformed lock there is refused, as everywhere: its pins would be hashed).
/// A fresh checkout: nothing in the stat cache could apply. Its own paths are those of the
/// working tree (the state directory's default name).
fn checkout_fingerprints(then: &Workspace) -> Result<BTreeMap<Name, Fingerprint>, Error> {
    let base = then.base_dir();
    let own = crate::load::own_paths(then.path(), &base.join(crate::load::STATE_DIR_NAME));
    let pins = Lock::read(&then.lock_path())?
        .filter(|l| l.project == then.cookbook.project.name)
        .map(|l| l.bases)
        .unwrap_or_default();
    Ok(hash::fingerprint_plan(
        &then.cookbook,
        &then.plan,
        base,
        &own,
        &StatCache::disabled(),
        hash::Pinning::current(&pins),
    )?)
}

fn manifests_of(prints: &BTreeMap<Name, Fingerprint>) -> BTreeMap<String, HashManifest> {
    prints
        .iter()
        .map(|(n, p)| (n.to_string(), p.manifest()))
        .collect()
}

fn read_manifest(path: &Path) -> Result<HashManifest, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Usage {
        message: format!(
            "{}:{}:{}: not a hash manifest: {e}",
            path.display(),
            e.line(),
            e.column()
        )
        .replace(&format!(" at line {} column {}", e.line(), e.column()), ""),
        help: Some("produce one with `cookbook explain CONTAINER > FILE`".to_owned()),
    })
}

/// The two sides of a change whose values are texts worth a line diff.
fn texts(change: &Change) -> Option<(&str, &str)> {
    match change {
        Change::Recipe {
            from: Some(Value::String(a)),
            to: Some(Value::String(b)),
            ..
        } if a.contains('\n') || b.contains('\n') || a.len() > 60 || b.len() > 60 => Some((a, b)),
        _ => None,
    }
}

/// A unified diff of two texts, three lines of context (what `diff -u` and git show).
pub fn unified(a: &str, b: &str) -> String {
    similar::TextDiff::from_lines(a, b)
        .unified_diff()
        .context_radius(3)
        .header("before", "after")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_diff_shows_the_changed_line_with_context() {
        let a = "FROM base\nWORKDIR /app\nCOPY . .\nCMD [\"a\"]\n";
        let b = "FROM base\nWORKDIR /app\nCOPY . .\nCMD [\"b\"]\n";
        assert_eq!(
            unified(a, b),
            "--- before\n+++ after\n@@ -1,4 +1,4 @@\n FROM base\n WORKDIR /app\n COPY . .\n-CMD [\"a\"]\n+CMD [\"b\"]\n"
        );
    }
}
