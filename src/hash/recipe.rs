//! The recipe: a container's resolved spec with every default applied, plus its Dockerfile text.
//!
//! Pure. Every key is always present (null when unset) so that the document a release engineer
//! reads is the whole truth. Host paths (an application's `source`, a Dockerfile container's
//! `context`) are not part of it: only where things land in the context, which the file list
//! covers.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::BasePin;
use crate::context::dockerfile::{app_dir, DEFAULT_WORKDIR};
use crate::model::{BaseImage, Container, ContainerKind, Cookbook, RunCommand};
use crate::oci::WrittenReference;

/// `pin`: `None` under hash_version 1 (no `pinned` member at all); `Some(None)` for an external
/// base not pinned yet (`"pinned": null`); `Some(Some(pin))` for a pinned one. `stage_bases`: a
/// Dockerfile container's external `FROM` images and their pins (null: not pinned yet), `None`
/// under hash_version 1 and 2 (no `bases` member at all).
pub fn recipe(
    cookbook: &Cookbook,
    container: &Container,
    dockerfile_path: &str,
    dockerfile_text: &str,
    pin: Option<Option<&BasePin>>,
    stage_bases: Option<&BTreeMap<WrittenReference, Option<BasePin>>>,
) -> Value {
    match &container.kind {
        ContainerKind::Generated(g) => {
            let applications: Vec<Value> = g
                .applications
                .iter()
                .map(|name| {
                    let a = &cookbook.applications[name];
                    json!({
                        "name": name.as_str(),
                        "context_dir": name.as_str(),
                        "image_dir": app_dir(g, name),
                        "language": a.language,
                        "type": a.kind,
                        "entrypoint": a.entrypoint,
                        "dependencies": a.dependencies,
                        "build_commands": a.build_commands,
                        "run_command": match &a.run_command {
                            None => Value::Null,
                            Some(RunCommand::Shell(s)) => json!(s),
                            Some(RunCommand::Exec(v)) => json!(v),
                        },
                        "env": a.env,
                    })
                })
                .collect();
            let mut ports: Vec<String> = g.ports.iter().map(ToString::to_string).collect();
            ports.sort();
            ports.dedup();
            json!({
                "kind": "generated",
                "project": cookbook.project.name.as_str(),
                "base_image": match &g.base {
                    BaseImage::Image(i) => match pin {
                        None => json!({ "image": i.as_str() }),
                        Some(pin) => json!({ "image": i.as_str(), "pinned": pin }),
                    },
                    // `scratch` is hashed as written and is never pinned: under version 2 its
                    // `pinned` is always null.
                    BaseImage::Scratch => match pin {
                        None => json!({ "image": "scratch" }),
                        Some(_) => json!({ "image": "scratch", "pinned": null }),
                    },
                    BaseImage::Container(c) => json!({ "container": c.as_str() }),
                },
                "applications": applications,
                "ports": ports,
                "env": g.env,
                "labels": g.labels,
                "build_args": g.build_args,
                "workdir": g.workdir.as_deref().unwrap_or(DEFAULT_WORKDIR),
                "dockerfile": dockerfile_path,
                "dockerfile_text": dockerfile_text,
            })
        }
        ContainerKind::Dockerfile(d) => {
            let mut recipe = json!({
                "kind": "dockerfile",
                "project": cookbook.project.name.as_str(),
                "build_args": d.build_args,
                "target": d.target,
                "dockerfile": dockerfile_path,
                "dockerfile_text": dockerfile_text,
            });
            if let Some(bases) = stage_bases {
                let bases: serde_json::Map<String, Value> = bases
                    .iter()
                    .map(|(r, pin)| (r.as_str().to_owned(), json!(pin)))
                    .collect();
                recipe["bases"] = Value::Object(bases);
            }
            recipe
        }
    }
}
