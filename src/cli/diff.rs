//! `cookbook diff`: why did a hash change?
//!
//! Two forms: `diff A.json B.json` compares two saved `explain` documents; `diff --rev REV
//! [CONTAINER…]` compares what a git revision's cookbook hashes with what the working tree hashes
//! now, without writing either manifest to disk. Differences are the normal answer, not an error:
//! they are printed, and the exit code is 1 as with diff(1) — with no `error:` line. Changed texts
//! (a Dockerfile, a generated recipe, run commands) are shown as a unified line diff.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use clap::Args;
use serde_json::{json, Value};

use super::{containers_named, fingerprints, load, CookbookArg, Format};
use crate::error::Error;
use crate::git::revision;
use crate::hash::{self, Change, HashManifest};
use crate::load::Loaded;
use crate::state::stat_cache::StatCache;
use crate::verify::VerifyError;

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub cookbook: CookbookArg,
    /// Compare the working tree with this git revision (a commit, branch or tag) instead of two
    /// files
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Two `explain` documents (`cookbook explain C > FILE`); with `--rev`, the containers to
    /// compare [default: all]
    #[arg(value_name = "FILE|CONTAINER")]
    pub args: Vec<String>,
}

/// One container's comparison.
struct Compared {
    container: String,
    from: Option<String>,
    to: Option<String>,
    changes: Vec<Change>,
}

pub fn run(args: &DiffArgs, top_file: Option<&Path>, out: &mut dyn Write) -> Result<(), Error> {
    let compared = match &args.rev {
        Some(rev) => against_revision(args, top_file, rev)?,
        None => {
            let [a, b] = args.args.as_slice() else {
                return Err(Error::Usage {
                    message: format!(
                        "`cookbook diff` takes two explain documents, got {}",
                        args.args.len()
                    ),
                    help: Some(
                        "`cookbook diff A.json B.json`, or `cookbook diff --rev REV [CONTAINER…]` \
                         to compare the working tree with a git revision"
                            .to_owned(),
                    ),
                });
            };
            let (ma, mb) = (read_manifest(Path::new(a))?, read_manifest(Path::new(b))?);
            vec![Compared {
                container: mb.container.clone(),
                changes: hash::diff(&ma, &mb),
                from: Some(ma.input_hash),
                to: Some(mb.input_hash),
            }]
        }
    };
    let differences: usize = compared
        .iter()
        .filter(|c| !c.changes.is_empty() || c.from != c.to)
        .map(|c| c.changes.len().max(1))
        .sum();
    match args.format {
        Format::Text => print_text(&compared, out),
        Format::Json => {
            let doc = json_document(&compared, args.rev.as_deref());
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
    if differences == 0 {
        Ok(())
    } else {
        Err(Error::Differences(differences))
    }
}

/// Every named container (or all), hashed at `rev` and in the working tree.
fn against_revision(
    args: &DiffArgs,
    top_file: Option<&Path>,
    rev: &str,
) -> Result<Vec<Compared>, Error> {
    let file = args.cookbook.resolve(top_file)?;
    let Loaded {
        cookbook: now,
        plan: now_plan,
        ..
    } = load(&file)?;
    let checkout = revision::checkout(&file, rev).map_err(VerifyError::from)?;
    let Loaded {
        cookbook: then,
        plan: then_plan,
        ..
    } = super::load_labelled_as(
        &checkout.cookbook_file,
        format!("{rev}:{}", checkout.relative_path),
        // Named as the working copy is, not after the temporary checkout's directory.
        crate::load::directory_name(super::base_dir(&file)).as_deref(),
    )?;
    // Containers named must exist on one side at least.
    let names: Vec<String> = if args.args.is_empty() {
        let all: std::collections::BTreeSet<String> = now
            .containers
            .keys()
            .chain(then.containers.keys())
            .map(|n| n.to_string())
            .collect();
        all.into_iter().collect()
    } else {
        for n in &args.args {
            if !now.containers.contains_key(n.as_str()) && !then.containers.contains_key(n.as_str())
            {
                containers_named(&now, std::slice::from_ref(n))?;
            }
        }
        args.args.clone()
    };
    let print_now = fingerprints(&file, &now, &now_plan)?;
    // A fresh checkout: nothing in the stat cache could apply. Its own paths are those of the
    // working tree (the state directory's default name).
    let base = super::base_dir(&checkout.cookbook_file);
    let own = crate::load::own_paths(
        &checkout.cookbook_file,
        &base.join(crate::load::STATE_DIR_NAME),
    );
    // The revision's own pins: a base re-pinned since then is one of the differences. A
    // malformed lock there is refused, as everywhere (its pins would be hashed).
    let then_pins = crate::state::lock::Lock::read(&crate::state::lock::Lock::path_for(
        &checkout.cookbook_file,
    ))?
    .filter(|l| l.project == then.project.name)
    .map(|l| l.bases)
    .unwrap_or_default();
    let print_then = hash::fingerprint_plan(
        &then,
        &then_plan,
        base,
        &own,
        &StatCache::disabled(),
        hash::Pinning::current(&then_pins),
    )?;
    let manifests = |prints: &BTreeMap<crate::model::Name, hash::Fingerprint>| {
        prints
            .iter()
            .map(|(n, p)| (n.to_string(), p.manifest()))
            .collect::<BTreeMap<String, HashManifest>>()
    };
    let (before, after) = (manifests(&print_then), manifests(&print_now));
    let mut seen = std::collections::BTreeSet::new();
    Ok(names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .map(|name| {
            let (a, b) = (before.get(&name), after.get(&name));
            let changes = match (a, b) {
                (Some(a), Some(b)) => hash::diff(a, b),
                _ => Vec::new(),
            };
            Compared {
                from: a.map(|m| m.input_hash.clone()),
                to: b.map(|m| m.input_hash.clone()),
                container: name,
                changes,
            }
        })
        .collect())
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

fn print_text(compared: &[Compared], out: &mut dyn Write) {
    let hash = |h: &Option<String>| h.clone().unwrap_or_else(|| "(absent)".to_owned());
    for c in compared {
        match (&c.from, &c.to) {
            (Some(a), Some(b)) if c.changes.is_empty() && a == b => {
                let _ = writeln!(out, "{}: identical ({a})", c.container);
                continue;
            }
            (None, _) | (_, None) => {
                let _ = writeln!(
                    out,
                    "{}: {} → {} (container {})",
                    c.container,
                    hash(&c.from),
                    hash(&c.to),
                    if c.from.is_none() { "added" } else { "removed" }
                );
                continue;
            }
            _ => {}
        }
        let _ = writeln!(out, "{}: {} → {}", c.container, hash(&c.from), hash(&c.to));
        for change in &c.changes {
            let _ = writeln!(out, "  {change}");
            if let Some((a, b)) = texts(change) {
                for line in unified(a, b).lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
    }
}

fn json_document(compared: &[Compared], rev: Option<&str>) -> Value {
    let containers: Vec<Value> = compared
        .iter()
        .map(|c| {
            let changes: Vec<Value> = c
                .changes
                .iter()
                .map(|ch| {
                    let mut v = change_json(ch);
                    v["message"] = Value::String(ch.to_string());
                    if let Some((a, b)) = texts(ch) {
                        v["unified_diff"] = Value::String(unified(a, b));
                    }
                    v
                })
                .collect();
            json!({
                "container": c.container,
                "from": c.from,
                "to": c.to,
                "identical": c.changes.is_empty() && c.from == c.to,
                "changes": changes,
            })
        })
        .collect();
    let differ = compared
        .iter()
        .any(|c| !c.changes.is_empty() || c.from != c.to);
    json!({
        "result": if differ { "different" } else { "identical" },
        "revision": rev,
        "containers": containers,
    })
}

/// A change as structured fields (the `message` is added beside them).
fn change_json(change: &Change) -> Value {
    match change {
        Change::HashVersion { from, to } => json!({"kind": "hash_version", "from": from, "to": to}),
        Change::Container { from, to } => json!({"kind": "container", "from": from, "to": to}),
        Change::FileAdded { path } => json!({"kind": "file_added", "path": path}),
        Change::FileRemoved { path } => json!({"kind": "file_removed", "path": path}),
        Change::FileChanged { path, what } => {
            json!({"kind": "file_changed", "path": path, "what": what})
        }
        Change::Recipe { pointer, from, to } => {
            json!({"kind": "recipe", "pointer": pointer, "from": from, "to": to})
        }
        Change::Dependency { name, from, to } => {
            json!({"kind": "parent", "name": name, "from": from, "to": to})
        }
    }
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
