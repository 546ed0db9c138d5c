//! The [`Workspace`]: one cookbook opened once, with what lies beside it.
//!
//! Every command that reads a cookbook starts here: the file (or standard input standing for one)
//! is read and checked once (`load`), and the lock, its base-image pins and the state directory
//! are found from it. The lock is read the first time a flow asks for it and kept: a command that
//! only validates never reads it, and one that plans, hashes and deploys reads it once.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::error::Error;
use crate::graph::Plan;
use crate::hash::{self, Fingerprint};
use crate::load::{LoadError, Loaded};
use crate::model::{Cookbook, Name};
use crate::state::lock::Lock;

/// A cookbook to open: a file on disk, or bytes (standard input) standing for a file at `path`,
/// whose directory the cookbook's relative paths, lock and state directory start from.
#[derive(Debug, Clone)]
pub struct CookbookFile {
    /// The file, or the path that stands for the bytes.
    pub path: PathBuf,
    /// How diagnostics name it (`<stdin>` for standard input).
    pub label: String,
    /// The cookbook's bytes when they did not come from `path` (standard input).
    pub bytes: Option<&'static [u8]>,
}

impl CookbookFile {
    /// A cookbook file on disk, named by its path.
    pub fn on_disk(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        CookbookFile {
            label: path.display().to_string(),
            path,
            bytes: None,
        }
    }

    /// The directory the cookbook's relative paths start from.
    pub fn base_dir(&self) -> &Path {
        crate::load::base_dir(&self.path)
    }

    /// Reads and checks the cookbook (syntax, schema, model, plan, then the disk), naming its
    /// project after `directory` when it names none (see `load::load_file_as`): a revision
    /// checked out in a temporary directory is named after the working copy's directory.
    pub fn load_as(&self, directory: Option<&str>) -> Result<Loaded, Error> {
        let loaded = match self.bytes {
            Some(bytes) => crate::load::load_bytes_as(bytes, Some(self.base_dir()), directory)
                .map_err(|diagnostics| LoadError::Invalid { diagnostics }),
            None => crate::load::load_file_as(&self.path, directory),
        };
        loaded.map_err(|e| match e {
            LoadError::Read { path, source } => Error::Read { path, source },
            LoadError::Invalid { diagnostics } => Error::Invalid {
                file: self.label.clone(),
                diagnostics,
            },
        })
    }
}

/// A cookbook opened once: its model, its plan, its warnings, and the lock and state directory
/// beside it.
#[derive(Debug)]
pub struct Workspace {
    pub file: CookbookFile,
    pub cookbook: Cookbook,
    /// The dependency plan of every container, sealed.
    pub plan: Plan,
    /// What the load stage warned about (the caller shows them or not).
    pub warnings: Vec<Diagnostic>,
    /// The engine a site with `host: "env"` (and `site detect` without a site) talks to: the
    /// environment's, unless the command was given `--context`.
    pub engine: crate::engine::Selector,
    lock: OnceCell<Option<Lock>>,
}

impl Workspace {
    /// Opens the cookbook `file`.
    pub fn open(file: CookbookFile) -> Result<Self, Error> {
        Self::open_as(file, None)
    }

    /// Opens `file`, naming its project after `directory` when it names none (a revision checked
    /// out elsewhere takes the working copy's directory name).
    pub fn open_as(file: CookbookFile, directory: Option<&str>) -> Result<Self, Error> {
        let Loaded {
            cookbook,
            plan,
            warnings,
        } = file.load_as(directory)?;
        Ok(Workspace {
            file,
            cookbook,
            plan,
            warnings,
            engine: crate::engine::Selector::Environment,
            lock: OnceCell::new(),
        })
    }

    /// The cookbook file's path (the stand-in for standard input included).
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The directory the cookbook's relative paths start from.
    pub fn base_dir(&self) -> &Path {
        self.file.base_dir()
    }

    /// The state directory (`.cookbook` beside the cookbook).
    pub fn state_dir(&self) -> PathBuf {
        crate::state::dir_for(&self.file.path)
    }

    /// Where this cookbook's lock is, read or not.
    pub fn lock_path(&self) -> PathBuf {
        Lock::path_for(&self.file.path)
    }

    /// The lock beside the cookbook, read the first time it is asked for: none yet (or for a
    /// cookbook read from standard input, which has no file for a lock to sit beside). A lock
    /// that is not valid, or another project's, is refused (exit 2, every problem located), as by
    /// every command that reads it: its pins would be written into the Dockerfiles this hashes.
    pub fn lock(&self) -> Result<Option<&Lock>, Error> {
        if let Some(lock) = self.lock.get() {
            return Ok(lock.as_ref());
        }
        let lock = if self.file.bytes.is_some() {
            None
        } else {
            Lock::read_for(&self.lock_path(), &self.cookbook.project.name)?
        };
        Ok(self.lock.get_or_init(|| lock).as_ref())
    }

    /// The lock of what has been published: none yet is a usage error.
    pub fn published(&self) -> Result<&Lock, Error> {
        self.lock()?.ok_or_else(|| Error::Usage {
            message: format!(
                "no {}: nothing has been published yet",
                self.lock_path().display()
            ),
            help: Some("run `cookbook apply` first".to_owned()),
        })
    }

    /// The base-image pins recorded in the lock: none without one.
    pub fn pins(&self) -> Result<hash::BasePins, Error> {
        Ok(self.lock()?.map(|l| l.bases.clone()).unwrap_or_default())
    }

    /// The plan to act on: the whole cookbook's, or one site's portion.
    pub fn site_plan(&self, site: Option<&str>) -> Result<Plan, Error> {
        let Some(site) = site else {
            return Ok(self.plan.clone());
        };
        match self.cookbook.sites.get(site) {
            // What the site runs, pod members included (an init container or sidecar is built
            // for the site although no container depends on it), and what those need to build.
            Some(_) => Ok(self
                .plan
                .restrict(&self.cookbook.site_deploy_set(site).unwrap_or_default())),
            None => Err(Error::Usage {
                message: format!("unknown site `{site}`"),
                help: Some(if self.cookbook.sites.is_empty() {
                    "this cookbook has no federation sites".to_owned()
                } else {
                    let known = self.cookbook.sites.keys().map(Name::as_str);
                    crate::model::suggest(site, "sites", known).unwrap_or_else(|| {
                        format!(
                            "sites in this cookbook: {}",
                            names(self.cookbook.sites.keys())
                        )
                    })
                }),
            }),
        }
    }

    /// Resolves container names given by a user, with the known ones for a typo.
    pub fn containers_named(&self, wanted: &[String]) -> Result<Vec<Name>, Error> {
        let containers = &self.cookbook.containers;
        wanted
            .iter()
            .map(|n| match containers.get_key_value(n.as_str()) {
                Some((name, _)) => Ok(name.clone()),
                None => Err(Error::Usage {
                    message: format!("unknown container `{n}`"),
                    help: Some(if containers.is_empty() {
                        "this cookbook has no containers".to_owned()
                    } else {
                        crate::model::suggest(n, "containers", containers.keys().map(Name::as_str))
                            .unwrap_or_else(|| {
                                format!("containers in this cookbook: {}", names(containers.keys()))
                            })
                    }),
                }),
            })
            .collect()
    }

    /// Fingerprints the containers of `plan` with the lock's base-image pins (offline: a base not
    /// pinned yet hashes as such), through the state directory's stat cache.
    pub fn fingerprints(&self, plan: &Plan) -> Result<BTreeMap<Name, Fingerprint>, Error> {
        let pins = self.pins()?;
        self.fingerprints_pinned(plan, hash::Pinning::current(&pins))
    }

    /// [`Workspace::fingerprints`] under a given hash version and pins.
    pub fn fingerprints_pinned(
        &self,
        plan: &Plan,
        pinning: hash::Pinning<'_>,
    ) -> Result<BTreeMap<Name, Fingerprint>, Error> {
        Ok(crate::load::fingerprints(
            &self.file.path,
            &self.cookbook,
            plan,
            pinning,
        )?)
    }
}

fn names<'a>(keys: impl Iterator<Item = &'a Name>) -> String {
    keys.map(Name::as_str).collect::<Vec<_>>().join(", ")
}
