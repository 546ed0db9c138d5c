//! `init`: looks at a project and generates (and with `write`, writes) a cookbook for it.
//!
//! Detection and generation are [`crate::init`]'s; this flow turns its failures into the
//! command's errors and returns the generated cookbook as a report, whose serialization is
//! `init --format json`'s document.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::Error;
pub use crate::init::Limits;
use crate::init::{self, Evidence, InitError, WriteError};

/// What `init` is asked.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The project directory.
    pub dir: PathBuf,
    /// `LANG=IMAGE`, as given (checked here).
    pub bases: Vec<String>,
    pub registry: Option<String>,
    pub name: Option<String>,
    pub limits: Limits,
    /// Write the cookbook and the generated files into `dir`.
    pub write: bool,
    /// With `write`: replace files that exist.
    pub force: bool,
    /// Keep, per container, the files behind each decision in the report.
    pub explain: bool,
}

/// The generated cookbook.
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// The cookbook, as a JSON value.
    pub cookbook: serde_json::Value,
    /// Per container, the files behind each decision (only when asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<BTreeMap<String, Vec<Decision>>>,
    /// Generated files (Dockerfiles), by project-relative path.
    pub files: BTreeMap<String, String>,
    /// What `init` could not decide or skipped.
    pub notes: Vec<String>,
    /// The plan's waves.
    pub waves: Vec<Vec<String>>,
    /// The files written (only with `write`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<Vec<String>>,
    /// The cookbook's text, pretty-printed, ending in a newline: what `cookbook.json` holds.
    #[serde(skip)]
    pub text: String,
    /// How many containers the cookbook has.
    #[serde(skip)]
    pub containers: usize,
}

/// One file and the decision it led to.
#[derive(Debug, Serialize)]
pub struct Decision {
    pub decision: String,
    pub file: String,
}

/// `init`. When nothing to build is found, `nothing_found` is given what `init` noted on the way
/// (a caller shows it beside the error).
pub fn init(
    opts: &InitOptions,
    nothing_found: &mut dyn FnMut(&[String]),
) -> Result<InitReport, Error> {
    let options = init::Options {
        bases: init::parse_bases(&opts.bases).map_err(usage)?,
        registry: opts.registry.clone(),
        name: opts.name.clone(),
        limits: opts.limits,
    };
    let generated = match init::init(&opts.dir, &options) {
        Ok(g) => g,
        Err(InitError::NothingFound { dir, notes }) => {
            nothing_found(&notes);
            return Err(Error::Usage {
                message: InitError::NothingFound { dir, notes: vec![] }.to_string(),
                help: Some("write cookbook.json by hand (see the README's format section), or run init in the project's directory".into()),
            });
        }
        Err(e @ InitError::Invalid { .. }) => return Err(Error::Failed(e.to_string())),
        Err(e) => return Err(usage(e)),
    };
    let written = if opts.write {
        let paths =
            init::write_outputs(&opts.dir, &generated, opts.force).map_err(|e| match e {
                WriteError::Exists(_) => usage(e),
                WriteError::Io { .. } => Error::Failed(e.to_string()),
            })?;
        Some(paths.iter().map(|p| p.display().to_string()).collect())
    } else {
        None
    };
    Ok(InitReport {
        cookbook: serde_json::from_str(&generated.cookbook).expect("init generates JSON"),
        containers: generated.explain.len(),
        explain: opts.explain.then(|| decisions(generated.explain)),
        files: generated.files,
        notes: generated.notes,
        waves: generated.waves,
        written,
        text: generated.cookbook,
    })
}

fn decisions(explain: BTreeMap<String, Vec<Evidence>>) -> BTreeMap<String, Vec<Decision>> {
    explain
        .into_iter()
        .map(|(container, evidence)| {
            let decisions = (evidence.into_iter())
                .map(|Evidence { file, decision }| Decision { decision, file })
                .collect();
            (container, decisions)
        })
        .collect()
}

fn usage(e: impl ToString) -> Error {
    Error::Usage {
        message: e.to_string(),
        help: None,
    }
}
