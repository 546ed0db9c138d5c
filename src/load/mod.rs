//! The front end's load stage: the one place that turns a cookbook file into a checked cookbook.
//!
//! Pipeline position: **bytes → [`parse`] (syntax, schema, model, plan) → disk checks**
//! → fingerprints. `cli` (every command) and `sync` (a fetched revision's checkout) call it, so a
//! cookbook is accepted by the same rules wherever it comes from.
//!
//! The disk checks are what the text alone cannot tell: every path the cookbook names
//! ([`Cookbook::paths`]) must exist, be a directory or a file as its field says, and — with every
//! symlink followed — stay inside the cookbook's directory; a dependency file must be sent in its
//! application's context (not excluded by that source's `.dockerignore`). Each problem is a
//! diagnostic located at the field that names the path, like every other. The file system is read
//! only by [`resolve`]; [`diagnose`] turns what was found into diagnostics from plain values.
//!
//! The disk checks need the model's resolved paths. When the text has problems they still run, on
//! the model built from what the text's checks accepted (see `parse`), so that one run shows both
//! kinds; a path the text's checks refused is not looked for (its problem is already said).
//!
//! Hashing checks the real paths again (`context::list`): a tree can change between the two.

use std::path::{Path, PathBuf};

mod parse;

pub use parse::{parse, parse_in, Parsed};

use crate::context::dockerignore::DockerIgnore;
use crate::context::OwnPaths;
use crate::diagnostic::{excerpt, Diagnostic};
use crate::graph::Plan;
use crate::model::{Cookbook, PathKind, PathUse, RelPath};
use crate::schema::span::SpanIndex;

/// The largest cookbook read (from a file or standard input). The 10,000-container benchmark
/// cookbook is about 3 MiB; the cap keeps a file linked to `/dev/zero` from exhausting memory.
pub const COOKBOOK_MAX: u64 = 64 << 20;

/// The name of the lock file, beside the cookbook file.
pub const LOCK_FILE: &str = "cookbook.lock";

/// The state directory's name when it is the default one, beside the cookbook file.
pub const STATE_DIR_NAME: &str = ".cookbook";

/// A checked cookbook and what is worth saying about it.
#[derive(Debug)]
pub struct Loaded {
    pub cookbook: Cookbook,
    /// The dependency plan of every container, sealed.
    pub plan: Plan,
    /// Located warnings (the cookbook is valid; a caller shows them).
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem found, located in the file.
    #[error("{} problem(s) found", diagnostics.len())]
    Invalid { diagnostics: Vec<Diagnostic> },
}

/// The directory a cookbook file's relative paths start from.
pub fn base_dir(file: &Path) -> &Path {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Reads and checks the cookbook file at `path`, its paths resolved from its directory (whose
/// name is the project's when the cookbook names none).
pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    load_file_as(path, None)
}

/// [`load_file`], with `directory` standing for the name of the cookbook's directory when it is
/// not where the cookbook really lives: a revision checked out in a temporary directory is named
/// as its working copy is, so that a project without `project.name` keeps its name and hashes.
pub fn load_file_as(path: &Path, directory: Option<&str>) -> Result<Loaded, LoadError> {
    use crate::context::file::{read_regular, FileError};
    let read_err = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = match read_regular(path, COOKBOOK_MAX) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(read_err(std::io::ErrorKind::NotFound.into())),
        Err(FileError::Io(source)) => return Err(read_err(source)),
        // Said as the system says it, like any path that names no file.
        Err(FileError::NotRegular) if path.is_dir() => {
            return Err(read_err(std::io::Error::from_raw_os_error(
                rustix::io::Errno::ISDIR.raw_os_error(),
            )))
        }
        // A cookbook linked to `/dev/zero`, a FIFO, 5 GiB: refused like any unreadable text.
        Err(why) => {
            return Err(LoadError::Invalid {
                diagnostics: vec![Diagnostic::new(
                    "syntax/file",
                    "",
                    format!("the file cannot be read as a cookbook: {why}"),
                )
                .located(crate::diagnostic::Location { line: 1, column: 1 })
                .with_help(format!(
                    "a cookbook is a regular file of JSON text, at most {} MiB",
                    COOKBOOK_MAX >> 20
                ))],
            })
        }
    };
    load_bytes_as(&bytes, Some(base_dir(path)), directory)
        .map_err(|diagnostics| LoadError::Invalid { diagnostics })
}

/// Checks a cookbook's bytes; with `base` (the directory the file lies in) the disk checks run
/// too. Without it only the text is checked (a revision read straight from git, before any
/// checkout exists).
pub fn load_bytes(bytes: &[u8], base: Option<&Path>) -> Result<Loaded, Vec<Diagnostic>> {
    load_bytes_as(bytes, base, None)
}

/// The name of the directory `base` (a cookbook's directory, possibly relative such as `.`), as
/// docker compose takes it: the last component of its absolute path, symlinks not resolved.
pub fn directory_name(base: &Path) -> Option<String> {
    let absolute = std::path::absolute(base).ok()?;
    let name = match absolute.file_name() {
        Some(name) => name.to_owned(),
        // `…/..`: only the file system knows what it names.
        None => std::fs::canonicalize(base).ok()?.file_name()?.to_owned(),
    };
    Some(name.to_string_lossy().into_owned())
}

/// [`load_bytes`] with the name that stands for the cookbook's directory (see [`load_file_as`]);
/// `None`: `base`'s own name, or none at all without `base`.
pub fn load_bytes_as(
    bytes: &[u8],
    base: Option<&Path>,
    directory: Option<&str>,
) -> Result<Loaded, Vec<Diagnostic>> {
    let directory = directory
        .map(str::to_owned)
        .or_else(|| base.and_then(directory_name));
    let Parsed { cookbook, plan } = match parse::check(bytes, directory.as_deref())? {
        parse::Checked::Valid(parsed) => parsed,
        parse::Checked::Invalid {
            text,
            mut diagnostics,
            cookbook,
            spans,
        } => {
            // The disk checks run on what the text's checks accepted, so that a missing
            // directory shows beside a misspelt key; a path the text's checks already refused
            // (and that the model replaced) is not looked for.
            if let (Some(base), Some(cookbook)) = (base, cookbook) {
                let refused = |pointer: &str| diagnostics.iter().any(|d| d.pointer == pointer);
                let disk = check_disk(&cookbook, base, |used| {
                    refused(&used.pointer)
                        || used.sent_from.is_some()
                            && used
                                .pointer
                                .rsplit_once('/')
                                .is_some_and(|(app, _)| refused(&format!("{app}/source")))
                });
                diagnostics.extend(disk);
            }
            return Err(parse::finish(text, diagnostics, spans));
        }
    };
    let mut problems = Vec::new();
    if let Some(base) = base {
        problems = check_disk(&cookbook, base, |_| false);
    }
    let mut warnings = cookbook.warnings();
    if problems.is_empty() && warnings.is_empty() {
        return Ok(Loaded {
            cookbook,
            plan,
            warnings,
        });
    }
    // `parse` succeeded, so the text is UTF-8 (after an optional BOM).
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).unwrap_or_default();
    let spans = SpanIndex::scan(text);
    for d in problems.iter_mut().chain(warnings.iter_mut()) {
        if d.location.is_none() {
            d.location = Some(spans.locate(text, &d.pointer, d.at_key));
        }
    }
    if problems.is_empty() {
        Ok(Loaded {
            cookbook,
            plan,
            warnings,
        })
    } else {
        problems.sort_by(|a, b| {
            (a.location, &a.pointer, a.code).cmp(&(b.location, &b.pointer, b.code))
        });
        Err(problems)
    }
}

/// What the file system says about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// It exists, inside the cookbook's directory.
    Inside { kind: Option<PathKind> },
    /// Nothing there (or a symlink to nothing).
    Missing,
    /// Its real path, symlinks followed, is outside the cookbook's directory.
    Outside { real: PathBuf },
    /// It could not be resolved for another reason (permissions, a loop of symlinks).
    Unreadable { reason: String },
}

/// Resolves `path` under `base`, whose real path is `real_base`. The only file-system access of
/// the path checks.
pub fn resolve(base: &Path, real_base: &Path, path: &RelPath) -> Resolved {
    match std::fs::canonicalize(path.under(base)) {
        Ok(real) if !real.starts_with(real_base) => Resolved::Outside { real },
        Ok(real) => Resolved::Inside {
            kind: match std::fs::metadata(&real) {
                Ok(m) if m.is_dir() => Some(PathKind::Directory),
                Ok(m) if m.is_file() => Some(PathKind::File),
                _ => None,
            },
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Resolved::Missing,
        Err(e) => Resolved::Unreadable {
            reason: e.to_string(),
        },
    }
}

/// The diagnostic for one path, from what was found. Pure.
pub fn diagnose(used: &PathUse, found: &Resolved) -> Option<Diagnostic> {
    // A file named relative to a tree is shown as it was written, with its tree.
    let what = match &used.sent_from {
        Some(tree) => format!(
            "{} {} of source {}",
            used.field,
            excerpt(used.path.strip_prefix(tree).unwrap_or_default().as_str()),
            excerpt(tree.as_str())
        ),
        None => format!("{} {}", used.field, excerpt(used.path.as_str())),
    };
    let kind = match used.kind {
        PathKind::Directory => "directory",
        PathKind::File => "file",
    };
    let (code, message, help) = match found {
        Resolved::Inside { kind: Some(k) } if *k == used.kind => return None,
        Resolved::Inside { .. } => (
            "path/kind",
            format!("{what} is not a {kind}"),
            format!("`{}` names a {kind}", used.field),
        ),
        Resolved::Missing => (
            "path/missing",
            format!("{what} does not exist"),
            match used.sent_from {
                Some(_) => format!("the {} is named relative to the application's `source`", used.field),
                None => format!("paths are relative to the directory of the cookbook file; create the {kind} or correct the path"),
            },
        ),
        Resolved::Outside { real } => (
            "path/outside",
            format!(
                "{what} leads outside the cookbook's directory through a symlink (to {})",
                real.display()
            ),
            "a cookbook only uses files inside its own directory: replace the symlink with the files, or move the cookbook up".to_owned(),
        ),
        Resolved::Unreadable { reason } => (
            "path/unreadable",
            format!("{what} cannot be resolved: {reason}"),
            "check the permissions of the directories on the way".to_owned(),
        ),
    };
    Some(Diagnostic::new(code, used.pointer.clone(), message).with_help(help))
}

/// Whether a file at `rel` (relative to its tree) is kept by the tree's `.dockerignore` text. Pure.
pub fn sent_despite_ignore(ignore_text: Option<&str>, rel: &str) -> bool {
    match ignore_text.map(DockerIgnore::parse) {
        None => true,
        Some(Ok(ignore)) => ignore.is_empty() || !ignore.is_excluded(rel),
        // A bad `.dockerignore` is reported (located in that file) when the context is listed.
        Some(Err(_)) => true,
    }
}

/// Every disk problem of a parsed cookbook whose file lies in `base`, unlocated.
fn check_disk(
    cookbook: &Cookbook,
    base: &Path,
    skip: impl Fn(&PathUse) -> bool,
) -> Vec<Diagnostic> {
    let real_base = match std::fs::canonicalize(base) {
        Ok(real) => real,
        Err(e) => {
            return vec![Diagnostic::new(
                "path/unreadable",
                "",
                format!(
                    "the cookbook's directory {} cannot be resolved: {e}",
                    base.display()
                ),
            )]
        }
    };
    let mut problems = Vec::new();
    // Directories already reported: a file named inside one of them is not reported again.
    let mut failed: Vec<RelPath> = Vec::new();
    for used in cookbook.paths() {
        if skip(&used) {
            continue;
        }
        if let Some(tree) = &used.sent_from {
            if failed.contains(tree) {
                continue;
            }
        }
        let found = resolve(base, &real_base, &used.path);
        if let Some(d) = diagnose(&used, &found) {
            problems.push(d);
            failed.push(used.path);
            continue;
        }
        if let Some(tree) = &used.sent_from {
            let rel = used.path.strip_prefix(tree).unwrap_or_default();
            // An unreadable `.dockerignore` is reported by hashing, which reads it again.
            let text =
                crate::context::dockerignore::read_file(&tree.under(base).join(".dockerignore"))
                    .ok()
                    .flatten();
            if !sent_despite_ignore(text.as_deref(), rel.as_str()) {
                problems.push(
                    Diagnostic::new(
                        "path/ignored",
                        used.pointer.clone(),
                        format!(
                            "{} {} of source {} is excluded by its .dockerignore, so it would be neither sent nor hashed",
                            used.field,
                            excerpt(rel.as_str()),
                            excerpt(tree.as_str())
                        ),
                    )
                    .with_help("remove the pattern that excludes it from that .dockerignore"),
                );
            }
        }
    }
    problems
}

/// Cookbook's own paths in the cookbook's directory (see [`OwnPaths`]): the cookbook file, the
/// lock beside it, the default state directory `.cookbook` beside it (excluded whatever
/// `$COOKBOOK_CACHE_DIR` says, so that the hash never depends on the environment), and
/// `state_dir` when it lies inside the cookbook's directory. Paths that cannot be resolved are
/// compared as written.
pub fn own_paths(cookbook_file: &Path, state_dir: &Path) -> OwnPaths {
    let base = base_dir(cookbook_file);
    let real_base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    let relative = |path: &Path| -> Option<RelPath> {
        // Resolve the parent only: the path itself may not exist yet (a lock before the first
        // apply) and must not be followed if it is a symlink.
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let real_parent = std::fs::canonicalize(parent).ok()?;
        let real = real_parent.join(path.file_name()?);
        let rel = real.strip_prefix(&real_base).ok()?;
        RelPath::parse(rel.to_str()?).ok()
    };
    let beside = |name: &str| RelPath::parse(name).expect("a plain file name");
    let file_name = cookbook_file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| RelPath::parse(n).ok());
    OwnPaths::new(
        file_name
            .into_iter()
            .chain([beside(LOCK_FILE), beside(STATE_DIR_NAME)])
            .chain(relative(state_dir)),
    )
}

/// Fingerprints the containers of `plan` of the cookbook at `file`, through the state
/// directory's stat cache (loaded, then saved when it changed), under `pinning` (the hash
/// version and the base-image pins). The cookbook's own files are left out of every context.
pub fn fingerprints(
    file: &Path,
    cookbook: &Cookbook,
    plan: &Plan,
    pinning: crate::hash::Pinning<'_>,
) -> Result<
    std::collections::BTreeMap<crate::model::Name, crate::hash::Fingerprint>,
    crate::context::ContextError,
> {
    let state_dir = crate::state::dir_for(file);
    let own = own_paths(file, &state_dir);
    let mut cache = crate::state::stat_cache::StatCache::load(&state_dir, base_dir(file));
    let prints =
        crate::hash::fingerprint_plan(cookbook, plan, base_dir(file), &own, &cache, pinning)?;
    // The cache only saves time: failing to write it is not worth failing the command for.
    let _ = cache.save();
    Ok(prints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PathUse;

    fn used(kind: PathKind) -> PathUse {
        let cookbook = parse(
            br#"{"manifest_version": "1.0", "project": {"name": "p"},
                "applications": {"a": {"source": "src"}},
                "containers": {"c": {"dockerfile": "d/Dockerfile", "context": "d"}}}"#,
        )
        .unwrap()
        .cookbook;
        cookbook
            .paths()
            .into_iter()
            .find(|u| u.kind == kind)
            .unwrap()
    }

    #[test]
    fn every_path_field_is_listed_with_its_pointer() {
        let cookbook = parse(
            br#"{"manifest_version": "1.0", "project": {"name": "p"},
                "applications": {"a": {"source": "src", "dependencies": "req/r.txt"}},
                "containers": {"c": {"dockerfile": "d/Dockerfile", "context": "d"}}}"#,
        )
        .unwrap()
        .cookbook;
        let listed: Vec<(String, &str, String)> = cookbook
            .paths()
            .into_iter()
            .map(|u| (u.pointer, u.field, u.path.to_string()))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "/applications/a/source".to_owned(),
                    "source",
                    "src".to_owned()
                ),
                (
                    "/applications/a/dependencies".to_owned(),
                    "dependency file",
                    "src/req/r.txt".to_owned()
                ),
                (
                    "/containers/c/context".to_owned(),
                    "context",
                    "d".to_owned()
                ),
                (
                    "/containers/c/dockerfile".to_owned(),
                    "dockerfile",
                    "d/Dockerfile".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn diagnoses_from_plain_values() {
        let dir = used(PathKind::Directory);
        assert_eq!(
            diagnose(
                &dir,
                &Resolved::Inside {
                    kind: Some(PathKind::Directory)
                }
            ),
            None
        );
        let wrong = diagnose(
            &dir,
            &Resolved::Inside {
                kind: Some(PathKind::File),
            },
        )
        .unwrap();
        assert_eq!(
            (wrong.code, wrong.message.as_str()),
            ("path/kind", "source \"src\" is not a directory")
        );
        let missing = diagnose(&dir, &Resolved::Missing).unwrap();
        assert_eq!(
            (missing.code, missing.pointer.as_str()),
            ("path/missing", "/applications/a/source")
        );
        let outside = diagnose(
            &dir,
            &Resolved::Outside {
                real: "/etc".into(),
            },
        )
        .unwrap();
        assert_eq!(
            outside.message,
            "source \"src\" leads outside the cookbook's directory through a symlink (to /etc)"
        );
    }

    #[test]
    fn dockerignore_decides_whether_a_dependency_file_is_sent() {
        assert!(sent_despite_ignore(None, "requirements.txt"));
        assert!(sent_despite_ignore(Some("*.log\n"), "requirements.txt"));
        assert!(!sent_despite_ignore(Some("*.txt\n"), "requirements.txt"));
        assert!(sent_despite_ignore(
            Some("*.txt\n!requirements.txt\n"),
            "requirements.txt"
        ));
    }

    #[test]
    fn own_paths_cover_the_file_the_lock_and_state_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my.json");
        let own = own_paths(&file, &dir.path().join("cache/state"));
        std::fs::create_dir(dir.path().join("cache")).unwrap();
        let own_existing = own_paths(&file, &dir.path().join("cache/state"));
        let names = |o: &OwnPaths| {
            o.paths()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        // The state directory's parent must exist to be resolved; before that it is not inside.
        assert_eq!(names(&own), [".cookbook", "cookbook.lock", "my.json"]);
        assert_eq!(
            names(&own_existing),
            [".cookbook", "cache/state", "cookbook.lock", "my.json"]
        );
        let elsewhere = own_paths(&file, Path::new("/var/cache/cookbook"));
        assert_eq!(names(&elsewhere), [".cookbook", "cookbook.lock", "my.json"]);
    }
}
