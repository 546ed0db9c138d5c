//! Engine-less assembly: what the image of a generated container whose applications have no
//! build commands consists of, as plain values (pure; no I/O).
//!
//! Pipeline position: validated cookbook + a container's context listing → **an [`Assembly`]**
//! (the one layer's entries, where they go, the config changes) → `image::assemble` writes the
//! image on top of its base → `apply` publishes it. No Docker engine takes part, as with ko and
//! Jib: such an image is its base plus files plus configuration, and nothing needs to run.
//!
//! It is the image the generated Dockerfile describes ([`super::dockerfile::generate`]): each
//! application's tree under `<workdir>/<app>/`, the applications' then the container's `ENV`s in
//! order, the `LABEL`s, `EXPOSE`d ports, the final `WORKDIR` and the `CMD` — but in **one** layer
//! (the classic builder makes one per `WORKDIR` and `COPY`) with one history entry. So cookbook
//! builds such a container this way whether or not an engine is there: one procedure, one digest
//! on every machine (docs/REPRODUCIBILITY.md, "Engine-less builds").
//!
//! The layer: a directory entry for every directory on the way to and inside each application's
//! tree and to the final working directory, then the files and symlinks of the context under
//! their new paths, in path order component by component (a directory before what it holds).
//! A directory the base image already has keeps the base's mode and owner (a layer's entry for a
//! directory decides it in the image: `/tmp` stays 1777, a `www-data` document root stays
//! theirs), as the engine's own layer would carry them; a new one is 0755, root. A path the base
//! has as a symlink is refused rather than replaced: the engine would follow it, and so must the
//! cookbook's `workdir` (name the link's target).

use std::collections::{BTreeMap, BTreeSet};

use super::dockerfile::{app_dir, command_app, DEFAULT_WORKDIR};
use super::Entry;
use crate::model::{ContainerKind, Cookbook, RunCommand};

/// The image of a container built without an engine, relative to its base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembly {
    /// `(context prefix, directory in the image)`: the context's `<app>/` tree is copied to the
    /// directory (absolute, normalized, no trailing `/`).
    pub copies: Vec<(String, String)>,
    /// The final working directory (absolute, normalized).
    pub workdir: String,
    /// `KEY=value` settings in the order the Dockerfile sets them (a later one wins).
    pub env: Vec<(String, String)>,
    /// The command, when an application has a `run_command`; else the base's stays.
    pub cmd: Option<Vec<String>>,
    /// `8080/tcp`…, sorted, no duplicates.
    pub ports: Vec<String>,
    /// The container's own labels (the build's labels are added by the caller, and win).
    pub labels: BTreeMap<String, String>,
    /// The layer's history entry: the Dockerfile steps it stands for.
    pub created_by: String,
}

/// Why a container needs a Docker engine to be built, or `None` when it can be assembled.
pub fn needs_engine(cookbook: &Cookbook, name: &crate::model::Name) -> Option<String> {
    let container = cookbook.containers.get(name)?;
    if let ContainerKind::Generated(g) = &container.kind {
        // The engine expands variables in WORKDIR (and COPY's destination) from the image's
        // environment; only it knows their values.
        if let Some(w) = g.workdir.as_deref().filter(|w| w.contains('$')) {
            return Some(format!(
                "its workdir `{w}` names a variable, which the engine expands"
            ));
        }
    }
    match &container.kind {
        ContainerKind::Dockerfile(d) => Some(format!(
            "it is built from its Dockerfile {} (its steps run in an engine)",
            d.dockerfile
        )),
        ContainerKind::Generated(g) => {
            let with_commands: Vec<&str> = g
                .applications
                .iter()
                .filter(|a| {
                    cookbook
                        .applications
                        .get(*a)
                        .is_some_and(|app| !app.build_commands.is_empty())
                })
                .map(|a| a.as_str())
                .collect();
            (!with_commands.is_empty()).then(|| {
                format!(
                    "the build commands of {} run in an engine",
                    with_commands.join(", ")
                )
            })
        }
    }
}

/// The assembly of container `name`, or `None` when it needs an engine ([`needs_engine`]).
pub fn plan(cookbook: &Cookbook, name: &crate::model::Name) -> Option<Assembly> {
    if needs_engine(cookbook, name).is_some() {
        return None;
    }
    let container = cookbook.containers.get(name)?;
    let ContainerKind::Generated(g) = &container.kind else {
        return None;
    };
    let mut copies = Vec::new();
    let mut env = Vec::new();
    let mut steps = Vec::new();
    for app_name in &g.applications {
        let Some(app) = cookbook.applications.get(app_name) else {
            continue;
        };
        let dir = clean(&app_dir(g, app_name));
        steps.push(format!("COPY {app_name}/ {dir}/"));
        copies.push((format!("{app_name}/"), dir));
        env.extend(app.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    env.extend(g.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let workdir = clean(
        &command_app(cookbook, g)
            .map(|a| app_dir(g, &a.name))
            .unwrap_or_else(|| g.workdir.clone().unwrap_or(DEFAULT_WORKDIR.to_owned())),
    );
    let cmd = command_app(cookbook, g)
        .and_then(|a| a.run_command.as_ref())
        .map(|c| match c {
            RunCommand::Shell(s) => vec!["/bin/sh".to_owned(), "-c".to_owned(), s.clone()],
            RunCommand::Exec(v) => v.clone(),
        });
    let mut ports: Vec<String> = g.ports.iter().map(ToString::to_string).collect();
    ports.sort();
    ports.dedup();
    steps.push(format!("WORKDIR {workdir}"));
    Some(Assembly {
        copies,
        workdir,
        env,
        cmd,
        ports,
        labels: g.labels.clone(),
        created_by: format!("cookbook assemble: {}", steps.join("; ")),
    })
}

/// `/a//b/./c/` → `/a/b/c` (`..` goes up, never above `/`): the path the engine would use.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// One entry of the assembled layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerItem {
    /// A directory (its tar path ends with `/`), with its permission bits and owner.
    Dir {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    /// Context entry `index`, under the tar path `path`.
    Entry { path: String, index: usize },
}

impl LayerItem {
    pub fn path(&self) -> &str {
        match self {
            LayerItem::Dir { path, .. } | LayerItem::Entry { path, .. } => path,
        }
    }
}

/// What the base image has at a path the layer writes a directory at (its layers applied in
/// order, whiteouts included; nothing when it has nothing there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseEntry {
    Dir {
        mode: u32,
        uid: u64,
        gid: u64,
    },
    /// A symlink, to this target.
    Symlink(String),
}

/// The directories the layer of `assembly` holds, as tar paths without the trailing `/`
/// (`srv`, `srv/web`…): what to look up in the base ([`layer_items`]'s `base`).
pub fn directories(assembly: &Assembly, entries: &[Entry]) -> BTreeSet<String> {
    let (_, dirs) = collect(assembly, entries);
    dirs.into_iter()
        .map(|d| d.trim_end_matches('/').to_owned())
        .collect()
}

/// Adds `dir` (`/a/b`, or a tar path `a/b`) and each directory above it, as tar paths (`a/`,
/// `a/b/`).
fn add_dir_and_parents(dir: &str, dirs: &mut BTreeSet<String>) {
    let mut at = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        at.push_str(part);
        at.push('/');
        dirs.insert(at.clone());
    }
}

/// The layer's entries, in order (see the module header). `entries` is the container's context
/// listing; only the applications' trees are taken (not the generated Dockerfile). `base`: what
/// the base has at [`directories`]' paths. `Err`: a path the base has as a symlink.
pub fn layer_items(
    assembly: &Assembly,
    entries: &[Entry],
    base: &BTreeMap<String, BaseEntry>,
) -> Result<Vec<LayerItem>, String> {
    let (mut items, dirs) = collect(assembly, entries);
    for dir in dirs {
        let key = dir.trim_end_matches('/');
        let (mode, uid, gid) = match base.get(key) {
            Some(BaseEntry::Dir { mode, uid, gid }) => (*mode, *uid, *gid),
            Some(BaseEntry::Symlink(target)) => {
                return Err(format!(
                    "/{key} is a symlink to {target} in the base image, and an image built \
                     without an engine cannot follow it: name the directory it points to"
                ))
            }
            None => (0o755, 0, 0),
        };
        items.push(LayerItem::Dir {
            path: dir,
            mode,
            uid,
            gid,
        });
    }
    // Component by component: `a/` (as `a`) sorts before `a/b` and before `a.txt`'s siblings'
    // contents, so every directory precedes what it holds.
    items.sort_by(|a, b| {
        let key = |i: &LayerItem| -> Vec<String> {
            i.path()
                .trim_end_matches('/')
                .split('/')
                .map(str::to_owned)
                .collect()
        };
        key(a).cmp(&key(b))
    });
    Ok(items)
}

/// The context entries under their image paths, and the directories (tar paths, with `/`).
fn collect(assembly: &Assembly, entries: &[Entry]) -> (Vec<LayerItem>, BTreeSet<String>) {
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    add_dir_and_parents(&assembly.workdir, &mut dirs);
    let mut items = Vec::new();
    for (prefix, dir) in &assembly.copies {
        add_dir_and_parents(dir, &mut dirs);
        let target = dir.trim_start_matches('/');
        for (index, entry) in entries.iter().enumerate() {
            let Some(rest) = entry.path.strip_prefix(prefix.as_str()) else {
                continue;
            };
            let path = format!("{target}/{rest}");
            if let Some((parent, _)) = path.rsplit_once('/') {
                add_dir_and_parents(parent, &mut dirs);
            }
            items.push(LayerItem::Entry { path, index });
        }
    }
    (items, dirs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{EntryKind, EntrySource};
    use std::sync::Arc;

    fn book(build_commands: &[&str]) -> Cookbook {
        let text = serde_json::json!({
            "manifest_version": "1.0",
            "project": { "name": "p" },
            "applications": {
                "web": {
                    "source": "web",
                    "build_commands": build_commands,
                    "run_command": "httpd -f -p 80",
                    "env": { "A": "1", "B": "2" }
                },
                "lib": { "source": "lib", "env": { "A": "3" } }
            },
            "containers": {
                "site": {
                    "base_image": "busybox:1",
                    "applications": ["lib", "web"],
                    "workdir": "/opt//www/",
                    "ports": [80, "53/udp", 80],
                    "env": { "C": "4" },
                    "labels": { "x": "y" }
                },
                "db": { "dockerfile": "db/Dockerfile", "context": "db" }
            }
        });
        let wire: crate::model::wire::CookbookWire = serde_json::from_value(text).unwrap();
        let (cookbook, problems) = crate::model::convert(&wire, None);
        assert!(problems.is_empty(), "{problems:?}");
        cookbook
    }

    fn name(n: &str) -> crate::model::Name {
        crate::model::Name::parse(n).unwrap()
    }

    #[test]
    fn a_container_without_build_commands_is_its_dockerfile_in_one_layer() {
        let cookbook = book(&[]);
        let a = plan(&cookbook, &name("site")).expect("assembled");
        assert_eq!(
            a.copies,
            vec![
                ("lib/".to_owned(), "/opt/www/lib".to_owned()),
                ("web/".to_owned(), "/opt/www/web".to_owned())
            ]
        );
        assert_eq!(a.workdir, "/opt/www/web");
        let env: Vec<String> = a.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(env, ["A=3", "A=1", "B=2", "C=4"]);
        assert_eq!(
            a.cmd.as_deref(),
            Some(&["/bin/sh".to_owned(), "-c".into(), "httpd -f -p 80".into()][..])
        );
        assert_eq!(a.ports, ["53/udp", "80/tcp"]);
        assert_eq!(
            a.created_by,
            "cookbook assemble: COPY lib/ /opt/www/lib/; COPY web/ /opt/www/web/; WORKDIR /opt/www/web"
        );
    }

    #[test]
    fn build_commands_and_dockerfiles_need_an_engine() {
        let cookbook = book(&["make"]);
        assert_eq!(plan(&cookbook, &name("site")), None);
        assert_eq!(
            needs_engine(&cookbook, &name("site")).as_deref(),
            Some("the build commands of web run in an engine")
        );
        assert!(needs_engine(&cookbook, &name("db"))
            .unwrap()
            .contains("db/Dockerfile"));
    }

    #[test]
    fn directories_precede_their_contents_and_only_the_trees_are_taken() {
        let cookbook = book(&[]);
        let a = plan(&cookbook, &name("site")).unwrap();
        let entry = |path: &str| Entry {
            path: path.to_owned(),
            kind: EntryKind::File,
            size: 0,
            source: EntrySource::Generated(Arc::from(&b""[..])),
        };
        let entries = [
            entry("Dockerfile"),
            entry("lib/a.txt"),
            entry("web/css/x.css"),
            entry("web/css.txt"),
            entry("web/index.html"),
        ];
        let items = layer_items(&a, &entries, &BTreeMap::new()).unwrap();
        let items: Vec<&str> = items.iter().map(LayerItem::path).collect();
        assert_eq!(
            items,
            [
                "opt/",
                "opt/www/",
                "opt/www/lib/",
                "opt/www/lib/a.txt",
                "opt/www/web/",
                "opt/www/web/css/",
                "opt/www/web/css/x.css",
                "opt/www/web/css.txt",
                "opt/www/web/index.html",
            ]
        );
    }

    #[test]
    fn directories_the_base_has_keep_its_mode_and_owner_and_its_symlinks_are_refused() {
        let cookbook = book(&[]);
        let a = plan(&cookbook, &name("site")).unwrap();
        assert_eq!(
            directories(&a, &[]),
            BTreeSet::from(["opt", "opt/www", "opt/www/lib", "opt/www/web"].map(String::from))
        );
        let base = BTreeMap::from([
            (
                "opt".to_owned(),
                BaseEntry::Dir {
                    mode: 0o1777,
                    uid: 0,
                    gid: 0,
                },
            ),
            (
                "opt/www".to_owned(),
                BaseEntry::Dir {
                    mode: 0o750,
                    uid: 33,
                    gid: 33,
                },
            ),
        ]);
        let items = layer_items(&a, &[], &base).unwrap();
        let dirs: Vec<(&str, u32, u64)> = items
            .iter()
            .map(|i| match i {
                LayerItem::Dir {
                    path, mode, uid, ..
                } => (path.as_str(), *mode, *uid),
                LayerItem::Entry { .. } => unreachable!("no entries"),
            })
            .collect();
        assert_eq!(
            dirs,
            [
                ("opt/", 0o1777, 0),
                ("opt/www/", 0o750, 33),
                ("opt/www/lib/", 0o755, 0),
                ("opt/www/web/", 0o755, 0)
            ]
        );
        let linked = BTreeMap::from([("opt".to_owned(), BaseEntry::Symlink("/usr/opt".into()))]);
        let err = layer_items(&a, &[], &linked).unwrap_err();
        assert!(
            err.starts_with("/opt is a symlink to /usr/opt in the base image"),
            "{err}"
        );
    }

    #[test]
    fn a_workdir_with_a_variable_needs_the_engine() {
        let mut cookbook = book(&[]);
        if let ContainerKind::Generated(g) =
            &mut cookbook.containers.get_mut(&name("site")).unwrap().kind
        {
            g.workdir = Some("$HOME/app".into());
        }
        assert!(plan(&cookbook, &name("site")).is_none());
        assert!(needs_engine(&cookbook, &name("site"))
            .unwrap()
            .contains("names a variable"));
    }

    #[test]
    fn paths_are_cleaned_as_the_engine_does() {
        assert_eq!(clean("/a//b/./c/"), "/a/b/c");
        assert_eq!(clean("/../a/../b"), "/b");
        assert_eq!(clean("/"), "/");
    }
}
