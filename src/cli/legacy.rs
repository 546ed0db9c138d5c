//! TEMPORARY: the library helpers `deploy` and `sync` still call,
//! until they open an `ops::Workspace` as the rest of the command line does. Removed when they
//! are converted (issue 21's merge); nothing new may call them.

use std::path::Path;

use crate::error::Error;
use crate::graph::Plan;
use crate::hash;
use crate::load::Loaded;
use crate::model::{Cookbook, Name};

/// Reads and checks a cookbook file; warnings are dropped.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    super::locate::cookbook_file(path.to_path_buf()).load_as(None)
}

/// Reads and checks a cookbook file named `label`, its project named after `directory`.
pub fn load_labelled_as(path: &Path, label: String, dir: Option<&str>) -> Result<Loaded, Error> {
    crate::ops::CookbookFile {
        label,
        ..super::locate::cookbook_file(path.to_path_buf())
    }
    .load_as(dir)
}

/// The directory the cookbook's relative paths start from.
pub fn base_dir(file: &Path) -> &Path {
    crate::load::base_dir(file)
}

/// [`crate::ops::Workspace::site_plan`], for a cookbook loaded without one.
pub fn site_plan(cookbook: &Cookbook, plan: &Plan, site: Option<&str>) -> Result<Plan, Error> {
    let Some(site) = site else {
        return Ok(plan.clone());
    };
    match cookbook.sites.get(site) {
        Some(s) => Ok(plan.restrict(&s.containers)),
        None => Err(Error::Usage {
            message: format!("unknown site `{site}`"),
            help: Some(if cookbook.sites.is_empty() {
                "this cookbook has no federation sites".to_owned()
            } else {
                format!("sites in this cookbook: {}", names(cookbook.sites.keys()))
            }),
        }),
    }
}

/// [`crate::ops::Workspace::containers_named`], for a cookbook loaded without one.
pub fn containers_named(cookbook: &Cookbook, wanted: &[String]) -> Result<Vec<Name>, Error> {
    let containers = &cookbook.containers;
    wanted
        .iter()
        .map(|n| match containers.get_key_value(n.as_str()) {
            Some((name, _)) => Ok(name.clone()),
            None => Err(Error::Usage {
                message: format!("unknown container `{n}`"),
                help: Some(if containers.is_empty() {
                    "this cookbook has no containers".to_owned()
                } else {
                    format!("containers in this cookbook: {}", names(containers.keys()))
                }),
            }),
        })
        .collect()
}

fn names<'a>(keys: impl Iterator<Item = &'a Name>) -> String {
    keys.map(Name::as_str).collect::<Vec<_>>().join(", ")
}

/// [`crate::ops::Workspace::fingerprints_pinned`], for a cookbook loaded without one.
pub fn fingerprints_pinned(
    file: &Path,
    cookbook: &Cookbook,
    plan: &Plan,
    pinning: hash::Pinning<'_>,
) -> Result<std::collections::BTreeMap<Name, hash::Fingerprint>, Error> {
    Ok(crate::load::fingerprints(file, cookbook, plan, pinning)?)
}
