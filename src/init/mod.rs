//! `cookbook init`: a project directory in, a valid cookbook (and the Dockerfiles and
//! `.dockerignore`s an engineer would ship for its services) out.
//!
//! Place in the pipeline: before it. `init` writes the file that `parse` later reads, and checks
//! its own output through that same parser ([`crate::load::parse`]) before returning
//! it, so what it prints always validates.
//!
//! Three steps, only the first touching the file system:
//! 1. [`walk`]: list the project's regular files (`.gitignore` and the root `.dockerignore`
//!    respected, symbolic links never followed, a time and size budget), into a [`Listing`];
//! 2. [`detect`]: pure, from the listing and the contents of the few files it asks for (through
//!    [`Files`]), find services: languages, Dockerfiles, compose files, client libraries;
//! 3. [`generate`]: pure, services → cookbook document + generated Dockerfiles (written by
//!    [`dockerfile`]) and `.dockerignore`s + notes.
//!
//! Invariants: nothing is guessed silently. Every decision records the files that led to it
//! ([`Evidence`], shown by `--explain`), and every question `init` could not answer is a note.
//! Output is deterministic: a listing is sorted, maps are `BTreeMap`s, and the same tree gives
//! the same bytes.

pub mod detect;
pub mod dockerfile;
pub mod generate;
pub mod walk;
pub mod write;

use std::collections::BTreeMap;
use std::path::Path;

pub use detect::{detect, Files, Service, ServiceKind};
pub use generate::{generate, BaseImages, Generated, LANGUAGES};
pub use walk::{walk, Limits, Listing};
pub use write::{write_outputs, WriteError};

use crate::diagnostic::Diagnostic;

/// One file and the decision it led to, for `--explain`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    pub file: String,
    pub decision: String,
}

/// What `init` is asked to do besides detecting.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--base LANG=IMAGE`, by language key (see [`LANGUAGES`]).
    pub bases: BTreeMap<String, String>,
    /// `packaging.registry`, when given.
    pub registry: Option<String>,
    /// The project's name; the directory's name (made a valid name) otherwise.
    pub name: Option<String>,
    pub limits: Limits,
}

/// Why `init` produced no cookbook.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot read the project directory {path}: {source}")]
    Root {
        path: String,
        source: std::io::Error,
    },
    #[error("no service found in {dir}: no Dockerfile, compose file, package.json, pyproject.toml, requirements.txt, manage.py, go.mod, Cargo.toml, pom.xml, build.gradle or index.html")]
    NothingFound { dir: String, notes: Vec<String> },
    #[error("unknown language `{0}` in --base (known: python, node, go, rust, java, static)")]
    UnknownLanguage(String),
    #[error("`--base {0}`: expected LANG=IMAGE")]
    BadBase(String),
    #[error("`--name {0}`: a name is lowercase letters, digits, `_`, `.`, `-`, starting with a letter or digit, at most 128")]
    BadName(String),
    /// The generated document failed the real parser: a bug in `init`, reported, never printed.
    #[error("init generated a cookbook that does not validate (a bug in init):\n{}", .diagnostics.iter().map(|d| crate::diagnostic::Rendered { file: "<generated cookbook>", diagnostic: d }.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid { diagnostics: Vec<Diagnostic> },
}

/// Walks `dir`, detects its services and generates the cookbook, checked by the real parser.
pub fn init(dir: &Path, options: &Options) -> Result<Generated, InitError> {
    let listing = walk(dir, &options.limits)?;
    let files = walk::DiskFiles::new(dir);
    let detection = detect(&listing, &files);
    let project = match &options.name {
        Some(n) => {
            if crate::model::Name::parse(n).is_none() {
                return Err(InitError::BadName(n.clone()));
            }
            n.clone()
        }
        None => detect::sanitize_name(&listing.root_name, "project"),
    };
    if detection.services.is_empty() {
        let mut notes = listing.notes.clone();
        notes.extend(detection.notes);
        return Err(InitError::NothingFound {
            dir: dir.display().to_string(),
            notes,
        });
    }
    let mut generated = generate(&project, &detection, options)?;
    let mut notes = listing.notes;
    notes.append(&mut generated.notes);
    generated.notes = notes;
    Ok(generated)
}

/// Parses `--base LANG=IMAGE` arguments.
pub fn parse_bases(args: &[String]) -> Result<BTreeMap<String, String>, InitError> {
    let mut bases = BTreeMap::new();
    for a in args {
        let Some((lang, image)) = a.split_once('=') else {
            return Err(InitError::BadBase(a.clone()));
        };
        if image.is_empty() || image.contains(char::is_whitespace) {
            return Err(InitError::BadBase(a.clone()));
        }
        if !LANGUAGES.contains(&lang) {
            return Err(InitError::UnknownLanguage(lang.to_owned()));
        }
        bases.insert(lang.to_owned(), image.to_owned());
    }
    Ok(bases)
}
