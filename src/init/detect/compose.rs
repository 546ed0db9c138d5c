//! Compose files: each service names, extends or adds a container.
//!
//! A service with `build:` names (and gets the ports, environment and `depends_on` of) the
//! service detected in its context directory, or becomes a Dockerfile container when its
//! Dockerfile exists; a service with only `image:` becomes a container from a generated one-line
//! Dockerfile. `depends_on` names compose services, so edges are mapped to container names once
//! the whole file is read.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::compose_runtime;
use super::{
    base, dockerfile_from, join, language_of, parent, sanitize_name, source_of, Scan, Service,
    ServiceKind,
};

static ENV_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$").expect("regex"));

/// One compose service being read: the file, its key as written and as a container name.
struct Entry<'a> {
    path: &'a str,
    raw: &'a str,
    name: String,
    spec: &'a yaml_serde::Value,
}

/// Applies compose file `path` to `services`.
pub(super) fn apply(path: &str, scan: &mut Scan, services: &mut Vec<Service>) {
    let doc: yaml_serde::Value = match scan
        .read_text(path)
        .and_then(|t| yaml_serde::from_str(&t).map_err(|e| format!("{path}: not valid YAML: {e}")))
    {
        Ok(v) => v,
        Err(e) => {
            scan.note(format!("{e}: its services are not used"));
            return;
        }
    };
    let Some(list) = doc.get("services").and_then(|s| s.as_mapping()) else {
        scan.note(format!("{path}: no `services` mapping: not used"));
        return;
    };
    let mut renames: BTreeMap<String, String> = BTreeMap::new(); // compose name → container name
    let mut pending: Vec<(String, usize)> = Vec::new(); // (compose name, service index)
    for (key, spec) in list {
        let Some(raw) = key.as_str() else { continue };
        let name = sanitize_name(raw, "service");
        if name != raw {
            scan.note(format!("{path}: service {raw:?} is named {name:?} (cookbook names are lowercase letters, digits, `_`, `.`, `-`)"));
        }
        let entry = Entry {
            path,
            raw,
            name,
            spec,
        };
        let Some(idx) = container(&entry, scan, services) else {
            continue;
        };
        carry(&entry, scan, &mut services[idx]);
        compose_runtime::carry(path, raw, spec, scan, &mut services[idx]);
        renames.insert(raw.to_owned(), entry.name);
        pending.push((raw.to_owned(), idx));
    }
    let carried: Vec<&Service> = pending.iter().map(|(_, i)| &services[*i]).collect();
    compose_runtime::shared_volumes(path, &carried, scan);
    top_level(path, &doc, scan);
    depends_on(path, scan, services, &renames, pending);
}

/// The index in `services` of the container `entry` describes (found, replaced or added), or
/// `None` (and a note) when it describes nothing init can package.
fn container(entry: &Entry, scan: &mut Scan, services: &mut Vec<Service>) -> Option<usize> {
    let Entry {
        path, raw, spec, ..
    } = entry;
    let (ctx, dockerfile) = match spec.get("build") {
        Some(b) if b.as_str().is_some() => (b.as_str().map(str::to_owned), None),
        Some(b) => (
            b.get("context")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
                .or(Some(".".into())),
            b.get("dockerfile")
                .and_then(|c| c.as_str())
                .map(str::to_owned),
        ),
        None => (None, None),
    };
    let image = spec.get("image").and_then(|i| i.as_str());
    if let Some(ctx) = ctx {
        built(entry, scan, services, &ctx, dockerfile.as_deref())
    } else if let Some(image) = image {
        Some(from_image(entry, scan, services, image))
    } else {
        scan.note(format!(
            "{path}: service {raw}: neither `build` nor `image`: not packaged"
        ));
        None
    }
}

/// A service with `build:` (context `ctx`, Dockerfile `dockerfile` when named).
fn built(
    entry: &Entry,
    scan: &mut Scan,
    services: &mut Vec<Service>,
    ctx: &str,
    dockerfile: Option<&str>,
) -> Option<usize> {
    let Entry { path, raw, .. } = entry;
    let Some(dir) = resolve(parent(path), ctx) else {
        scan.note(format!(
            "{path}: service {raw}: build context {ctx:?} leaves the project: not packaged"
        ));
        return None;
    };
    let df = match dockerfile {
        Some(f) => resolve(&dir, f),
        None => Some(join(&dir, "Dockerfile")),
    };
    let existing = services
        .iter()
        .position(|s| s.dir == dir && !matches!(s.kind, ServiceKind::Image { .. }));
    let df_exists = df
        .as_deref()
        .is_some_and(|f| scan.index.has(parent(f), base(f)));
    match (existing, df_exists) {
        (Some(i), true)
            if matches!(services[i].kind, ServiceKind::Dockerfile { .. })
                || dockerfile.is_none() =>
        {
            Some(i)
        }
        (_, true) => {
            let df = df.expect("exists");
            let mut s = Service::new(
                entry.name.clone(),
                &dir,
                ServiceKind::Dockerfile {
                    dockerfile: df.clone(),
                    context: source_of(&dir),
                    from: scan.read_text(&df).ok().and_then(|t| dockerfile_from(&t)),
                },
            );
            s.why(&df, format!("the Dockerfile of compose service {raw}"));
            if let Some(i) = existing {
                services.remove(i);
            }
            services.push(s);
            Some(services.len() - 1)
        }
        (Some(i), false) => {
            let lang = language_of(&services[i]);
            if matches!(services[i].kind, ServiceKind::Generated(_)) && dockerfile.is_none() {
                services[i].why(*path, format!("compose service {raw} builds {} without a Dockerfile: init writes one for the detected {lang} service", source_of(&dir)));
            } else {
                scan.note(format!("{path}: service {raw}: builds {} but there is no {}: the detected {lang} service is used instead", source_of(&dir), df.unwrap_or_default()));
            }
            Some(i)
        }
        (None, false) => {
            scan.note(format!("{path}: service {raw}: nothing to build in {} (no Dockerfile, no detected language): not packaged", source_of(&dir)));
            None
        }
    }
}

/// A service with only `image:`: a container packaged through a generated Dockerfile.
fn from_image(entry: &Entry, scan: &mut Scan, services: &mut Vec<Service>, image: &str) -> usize {
    let Entry { path, raw, .. } = entry;
    let mut s = Service::new(
        entry.name.clone(),
        parent(path),
        ServiceKind::Image {
            image: image.to_owned(),
        },
    );
    s.why(*path, format!("compose service {raw}: image {image}, packaged through a generated Dockerfile (FROM {image})"));
    if !image.contains(':') && !image.contains('@') {
        scan.note(format!("{path}: service {raw}: image {image} has no tag: pin one (e.g. {image}:<version>) for reproducible builds"));
    }
    services.push(s);
    services.len() - 1
}

/// What the compose service gives its container: its name, ports, environment, and the
/// `depends_on` names (still compose names; [`depends_on`] maps them).
fn carry(entry: &Entry, scan: &mut Scan, s: &mut Service) {
    let Entry {
        path,
        raw,
        name,
        spec,
    } = entry;
    if s.name != *name {
        s.why(
            *path,
            format!("named {name} after compose service {raw} (was {})", s.name),
        );
        s.name = name.clone();
    } else {
        s.why(*path, format!("compose service {raw}"));
    }
    for key in ["ports", "expose"] {
        for p in spec
            .get(key)
            .and_then(|p| p.as_sequence())
            .into_iter()
            .flatten()
        {
            match compose_port(p) {
                Ok(p) => {
                    s.why(*path, format!("port {p} (compose {key})"));
                    s.ports.insert(p);
                }
                Err(e) => scan.note(format!("{path}: service {raw}: {e}: not carried")),
            }
        }
    }
    environment(entry, scan, s);
    if spec.get("env_file").is_some() {
        scan.note(format!(
            "{path}: service {raw}: env_file is not read by init: add its variables by hand"
        ));
    }
    let deps: Vec<String> = match spec.get("depends_on") {
        Some(yaml_serde::Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(str::to_owned)
            .collect(),
        Some(yaml_serde::Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str())
            .map(str::to_owned)
            .collect(),
        _ => vec![],
    };
    s.depends_on.extend(deps);
}

/// The service's `environment` (a mapping or a list of `K=V`), the valid variables carried.
fn environment(entry: &Entry, scan: &mut Scan, s: &mut Service) {
    let Entry {
        path, raw, spec, ..
    } = entry;
    let mut env: Vec<(String, Option<String>)> = Vec::new();
    match spec.get("environment") {
        Some(yaml_serde::Value::Mapping(m)) => {
            for (k, v) in m {
                if let Some(k) = k.as_str() {
                    env.push((k.to_owned(), yaml_scalar(v)));
                }
            }
        }
        Some(yaml_serde::Value::Sequence(items)) => {
            for i in items.iter().filter_map(|i| i.as_str()) {
                match i.split_once('=') {
                    Some((k, v)) => env.push((k.to_owned(), Some(v.to_owned()))),
                    None => env.push((i.to_owned(), None)),
                }
            }
        }
        _ => {}
    }
    for (k, v) in env {
        match v {
            Some(v) if ENV_NAME.is_match(&k) && !v.contains(['\n', '\r']) => {
                if v.contains("${") || v.contains('$') {
                    scan.note(format!("{path}: service {raw}: {k}={v} uses compose interpolation: kept literally"));
                }
                s.why(*path, format!("env {k} (compose environment)"));
                s.env.insert(k, v);
            }
            Some(_) => scan.note(format!("{path}: service {raw}: environment {k}: not a valid variable or a multi-line value: not carried")),
            None => scan.note(format!("{path}: service {raw}: environment {k} has no value (taken from the shell by compose): not carried")),
        }
    }
}

/// Top-level keys init does not carry (`networks`, `secrets`, `configs`, volume options): notes.
fn top_level(path: &str, doc: &yaml_serde::Value, scan: &mut Scan) {
    for key in ["networks", "secrets", "configs"] {
        if doc.get(key).is_some() {
            scan.note(format!("{path}: top-level {key} not carried over (a Docker site gives each stage one network; secrets are referenced per stage)"));
        }
    }
    for (name, spec) in doc
        .get("volumes")
        .and_then(|v| v.as_mapping())
        .into_iter()
        .flatten()
    {
        let options: Vec<&str> = spec
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.as_str())
            .collect();
        if !options.is_empty() {
            scan.note(format!(
                "{path}: volume {}: {} not carried over (a persistent volume is the engine's default local volume)",
                name.as_str().unwrap_or("?"),
                options.join(", ")
            ));
        }
    }
}

/// depends_on names compose services: maps them to container names once all are known.
fn depends_on(
    path: &str,
    scan: &mut Scan,
    services: &mut [Service],
    renames: &BTreeMap<String, String>,
    pending: Vec<(String, usize)>,
) {
    for (raw, idx) in pending {
        let deps = std::mem::take(&mut services[idx].depends_on);
        for d in deps {
            match renames.get(&d) {
                Some(n) => {
                    services[idx].why(path, format!("depends_on {n} (compose depends_on)"));
                    services[idx].depends_on.insert(n.clone());
                }
                None if services.iter().any(|s| s.name == d) => {
                    services[idx].depends_on.insert(d);
                }
                None => scan.note(format!(
                    "{path}: service {raw}: depends_on {d:?}, which is not packaged: edge dropped"
                )),
            }
        }
    }
}

/// `base/rel` normalized; `None` when it leaves the project.
fn resolve(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = if base.is_empty() {
        vec![]
    } else {
        base.split('/').collect()
    };
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn yaml_scalar(v: &yaml_serde::Value) -> Option<String> {
    match v {
        yaml_serde::Value::String(s) => Some(s.clone()),
        yaml_serde::Value::Number(n) => Some(n.to_string()),
        yaml_serde::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The container side of a compose port (`"8080:80/udp"` → `80/udp`); `None` for a range.
pub(super) fn compose_port(v: &yaml_serde::Value) -> Result<String, String> {
    let (target, proto) = match v {
        yaml_serde::Value::Mapping(m) => (
            m.get("target").and_then(yaml_scalar).unwrap_or_default(),
            m.get("protocol").and_then(yaml_scalar),
        ),
        other => {
            let s = yaml_scalar(other).unwrap_or_default();
            let (spec, proto) = match s.split_once('/') {
                Some((a, p)) => (a.to_owned(), Some(p.to_owned())),
                None => (s.clone(), None),
            };
            (spec.rsplit(':').next().unwrap_or("").to_owned(), proto)
        }
    };
    let n: u32 = target
        .parse()
        .map_err(|_| format!("port {target:?} (a range or not a number)"))?;
    if !(1..=65535).contains(&n) {
        return Err(format!("port {n} out of range"));
    }
    Ok(match proto.as_deref() {
        None | Some("tcp") => n.to_string(),
        Some(p @ ("udp" | "sctp")) => format!("{n}/{p}"),
        Some(p) => return Err(format!("port {n}/{p}: unknown protocol")),
    })
}
