//! An image assembled without an engine: a base image's layers and config, plus one layer and
//! the config changes of an [`Assembly`], written as a normalized OCI image layout.
//!
//! Pipeline position: `context::assembly` (what goes in) → **here** (the image, on disk) →
//! `apply::publish` (pushed, or loaded into an engine). The new layer is re-encoded by
//! [`super::normalize_layer`] and stored as [`Compression::default`] says, and the config goes
//! through [`super::normalize_config`]: an assembled image is normalized exactly as an engine's
//! build is, so the same rules (epoch times, canonical JSON, one tar encoding) hold for both.
//!
//! The config is the base's, changed as the generated Dockerfile's steps would change it: `ENV`
//! replaces a variable the base sets or appends it, `LABEL`s and `EXPOSE`d ports are added to
//! the base's, `WORKDIR` and `CMD` replace the base's (an `ENTRYPOINT` of the base stays), and
//! one history entry is added for the one layer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::layout::{write_image, write_normalized_layer};
use super::{config, Compression, ImageError, LayerInfo, NormalizedImage, EPOCH};
use crate::context::assembly::{Assembly, BaseEntry};

/// The image an assembly starts from: its config as the base has it (`None`: `scratch`) and its
/// layers as the base's manifest lists them (their blobs need not be in the output directory: a
/// registry's base is mounted or copied when the image is published).
#[derive(Debug, Clone, Default)]
pub struct Base {
    pub config: Option<Vec<u8>>,
    pub layers: Vec<LayerInfo>,
}

/// Writes the image of `assembly` on `base` into the OCI layout directory `out`: the layer tar
/// `layer` (as `context::tar::write_layer` writes it) normalized into a blob, and the config with
/// `labels` (the build's own, which win over the container's) added.
pub fn assemble(
    base: &Base,
    assembly: &Assembly,
    labels: &BTreeMap<String, String>,
    layer: impl Read,
    out: &Path,
) -> Result<NormalizedImage, ImageError> {
    let blobs = super::create_blobs_dir(out)?;
    let raw = config_for(base.config.as_deref(), assembly, labels)?;
    let stated = match &base.config {
        Some(_) => config::diff_ids(&raw)?,
        None => Vec::new(),
    };
    let listed: Vec<String> = base.layers.iter().map(|l| l.diff_id.to_string()).collect();
    if stated != listed {
        return Err(ImageError::Layout(format!(
            "the base's config lists the layers {stated:?}, its manifest {listed:?}"
        )));
    }
    let (_, ours) =
        write_normalized_layer(base.layers.len(), layer, &blobs, Compression::default())?;
    let mut layers = base.layers.clone();
    layers.push(ours);
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let config = config::normalize_config(&raw, &diff_ids)?;
    write_image(out, config, layers)
}

/// What one base layer says about directories: its directories (mode, owner) and symlinks by
/// path (`a/b`), the paths it whites out, and the directories it makes opaque. Files are not
/// kept: an index of a large base stays small, and is kept per layer digest for the run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LayerIndex {
    paths: BTreeMap<String, BaseEntry>,
    /// `.wh.NAME`: NAME and everything below it, in the layers below this one, is gone.
    whiteouts: BTreeSet<String>,
    /// `.wh..wh..opq` in a directory: what the layers below had in it is gone (the directory
    /// itself stays). The root is `""`.
    opaque: BTreeSet<String>,
}

impl LayerIndex {
    /// Reads an uncompressed layer tar, headers only (file contents are skipped, not kept).
    pub fn read(layer: impl Read) -> io::Result<LayerIndex> {
        let mut index = LayerIndex::default();
        let mut archive = tar::Archive::new(layer);
        for entry in archive.entries()? {
            let entry = entry?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = clean_tar_path(&raw);
            let (parent, name) = match path.rsplit_once('/') {
                Some((p, n)) => (p.to_owned(), n),
                None => (String::new(), path.as_str()),
            };
            let join = |n: &str| {
                if parent.is_empty() {
                    n.to_owned()
                } else {
                    format!("{parent}/{n}")
                }
            };
            if name == ".wh..wh..opq" {
                index.opaque.insert(parent.clone());
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                index.whiteouts.insert(join(hidden));
                continue;
            }
            let header = entry.header();
            match header.entry_type() {
                tar::EntryType::Directory => {
                    index.paths.insert(
                        path.clone(),
                        BaseEntry::Dir {
                            mode: header.mode()?,
                            uid: header.uid()?,
                            gid: header.gid()?,
                        },
                    );
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    index.paths.insert(path.clone(), BaseEntry::Symlink(target));
                }
                _ => {}
            }
        }
        Ok(index)
    }
}

/// [`LayerIndex::read`] of a layer blob in a file, gzip-compressed or not.
pub fn index_layer_file(path: &Path) -> Result<LayerIndex, ImageError> {
    let read_err = |message: String| ImageError::Read {
        path: path.to_owned(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| read_err(e.to_string()))?;
    let layer = super::layout::decompressing(file).map_err(|e| read_err(e.to_string()))?;
    LayerIndex::read(layer).map_err(|e| read_err(format!("not a layer tar: {e}")))
}

/// `./a/b/` → `a/b`.
fn clean_tar_path(raw: &str) -> String {
    let mut p = raw;
    loop {
        let next = p.trim_start_matches("./").trim_start_matches('/');
        if next == p {
            break;
        }
        p = next;
    }
    p.trim_end_matches('/').to_owned()
}

/// What the base whose layers' indexes are `layers` (bottom first) has at each of `paths` (as
/// `context::assembly::directories` gives them), as the engine's overlay applies them (the OCI
/// image spec's "Whiteouts"): in each layer, a whiteout of the path or of any directory above it,
/// or an opaque directory above it, removes what the layers below had there — never what the
/// same layer holds — and then the layer's own entry for the path replaces what is left. Paths
/// the base does not have are left out.
pub fn base_entries(
    layers: &[Arc<LayerIndex>],
    paths: &BTreeSet<String>,
) -> BTreeMap<String, BaseEntry> {
    let mut out = BTreeMap::new();
    for path in paths {
        // The path and each directory above it, deepest last: `a`, `a/b`, `a/b/c`.
        let ancestry: Vec<&str> = path
            .match_indices('/')
            .map(|(i, _)| &path[..i])
            .chain([path.as_str()])
            .collect();
        let mut current: Option<&BaseEntry> = None;
        for layer in layers {
            let whited_out = ancestry.iter().any(|p| layer.whiteouts.contains(*p));
            let under_opaque = layer.opaque.contains("")
                || ancestry[..ancestry.len() - 1]
                    .iter()
                    .any(|p| layer.opaque.contains(*p));
            if whited_out || under_opaque {
                current = None;
            }
            if let Some(entry) = layer.paths.get(path) {
                current = Some(entry);
            }
        }
        if let Some(entry) = current {
            out.insert(path.clone(), entry.clone());
        }
    }
    out
}

/// The OCI name of the architecture this program runs on (what `FROM scratch` gets, as the
/// engine gives its own).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The base's config (or a `scratch` one) with the assembly's changes, not yet normalized.
fn config_for(
    base: Option<&[u8]>,
    assembly: &Assembly,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<u8>, ImageError> {
    let json_err = |source| ImageError::Json {
        what: "base config",
        source,
    };
    let mut config: Value = match base {
        Some(raw) => serde_json::from_slice(raw).map_err(json_err)?,
        None => json!({
            "architecture": host_architecture(),
            "os": "linux",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [] },
        }),
    };
    let Some(top) = config.as_object_mut() else {
        return Err(ImageError::Layout(
            "the base's config is not an object".into(),
        ));
    };
    let runtime = top.entry("config").or_insert_with(|| json!({}));
    if !runtime.is_object() {
        *runtime = json!({});
    }
    let runtime = runtime.as_object_mut().expect("an object");

    let mut env: Vec<String> = strings(runtime.get("Env"));
    // As the engine's builders do: an image whose base sets no PATH gets the default one.
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_owned());
    }
    for (key, value) in &assembly.env {
        let setting = format!("{key}={value}");
        match env
            .iter()
            .position(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(at) => env[at] = setting,
            None => env.push(setting),
        }
    }
    if !env.is_empty() {
        runtime.insert("Env".into(), json!(env));
    }
    let mut all_labels = object(runtime.get("Labels"));
    for (key, value) in assembly.labels.iter().chain(labels) {
        all_labels.insert(key.clone(), Value::String(value.clone()));
    }
    if !all_labels.is_empty() {
        runtime.insert("Labels".into(), Value::Object(all_labels));
    }
    let mut ports = object(runtime.get("ExposedPorts"));
    for port in &assembly.ports {
        ports.insert(port.clone(), json!({}));
    }
    if !ports.is_empty() {
        runtime.insert("ExposedPorts".into(), Value::Object(ports));
    }
    runtime.insert("WorkingDir".into(), json!(assembly.workdir));
    if let Some(cmd) = &assembly.cmd {
        runtime.insert("Cmd".into(), json!(cmd));
    }

    let history = top.entry("history").or_insert_with(|| json!([]));
    if !history.is_array() {
        *history = json!([]);
    }
    history
        .as_array_mut()
        .expect("an array")
        .push(json!({ "created": EPOCH, "created_by": assembly.created_by }));
    serde_json::to_vec(&config).map_err(json_err)
}

/// The `PATH` the Docker engine gives an image whose base sets none (moby's
/// `system.DefaultPathEnv` for Linux).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn object(value: Option<&Value>) -> Map<String, Value> {
    value
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assembly() -> Assembly {
        Assembly {
            copies: vec![("web/".into(), "/srv/web".into())],
            workdir: "/srv/web".into(),
            env: vec![("PATH".into(), "/bin".into()), ("A".into(), "1".into())],
            cmd: Some(vec!["httpd".into()]),
            ports: vec!["80/tcp".into()],
            labels: BTreeMap::from([("x".into(), "container".into())]),
            created_by: "cookbook assemble: COPY web/ /srv/web/; WORKDIR /srv/web".into(),
        }
    }

    #[test]
    fn the_config_is_the_bases_changed_as_the_dockerfile_would() {
        let base = br#"{"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z",
            "config":{"Env":["PATH=/usr/bin:/bin","HOME=/root"],"Entrypoint":["/init"],
                      "Labels":{"x":"base","y":"base"},"ExposedPorts":{"22/tcp":{}}},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},
            "history":[{"created":"2026-01-01T00:00:00Z","created_by":"ADD rootfs"}]}"#;
        let labels = BTreeMap::from([("x".into(), "build".into())]);
        let raw = config_for(Some(base), &assembly(), &labels).unwrap();
        let config =
            config::normalize_config(&raw, &["sha256:aa".into(), "sha256:bb".into()]).unwrap();
        assert_eq!(
            String::from_utf8(config).unwrap(),
            r#"{"architecture":"amd64","config":{"Cmd":["httpd"],"Entrypoint":["/init"],"Env":["PATH=/bin","HOME=/root","A=1"],"ExposedPorts":{"22/tcp":{},"80/tcp":{}},"Labels":{"x":"build","y":"base"},"WorkingDir":"/srv/web"},"created":"1970-01-01T00:00:00Z","history":[{"created":"1970-01-01T00:00:00Z","created_by":"ADD rootfs"},{"created":"1970-01-01T00:00:00Z","created_by":"cookbook assemble: COPY web/ /srv/web/; WORKDIR /srv/web"}],"os":"linux","rootfs":{"diff_ids":["sha256:aa","sha256:bb"],"type":"layers"}}"#
        );
    }

    #[test]
    fn scratch_gets_this_machines_architecture() {
        let raw = config_for(None, &assembly(), &BTreeMap::new()).unwrap();
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["architecture"], host_architecture());
        assert_eq!(v["os"], "linux");
        // The default PATH first, then replaced in place by the assembly's own.
        assert_eq!(v["config"]["Env"], json!(["PATH=/bin", "A=1"]));
        let mut without_path = assembly();
        without_path.env.remove(0);
        let raw = config_for(None, &without_path, &BTreeMap::new()).unwrap();
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["config"]["Env"], json!([DEFAULT_PATH, "A=1"]));
    }

    fn tar(entries: &[(&str, tar::EntryType, u32, u64, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, mode, uid, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_uid(*uid);
            h.set_gid(*uid);
            h.set_size(0);
            match link {
                Some(target) => b.append_link(&mut h, path, target).unwrap(),
                None => b.append_data(&mut h, path, std::io::empty()).unwrap(),
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn the_base_is_read_layer_over_layer_with_whiteouts_and_opaque_directories() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let lower = tar(&[
            ("./tmp/", Directory, 0o1777, 0, None),
            ("var/", Directory, 0o755, 0, None),
            ("var/www/", Directory, 0o755, 33, None),
            ("var/www/old/", Directory, 0o700, 0, None),
            ("var/run", Symlink, 0o777, 0, Some("/run")),
            ("srv/", Directory, 0o755, 0, None),
            ("etc/passwd", Regular, 0o644, 0, None),
        ]);
        let upper = tar(&[
            ("srv/.wh.data", Regular, 0o644, 0, None),
            ("var/www/.wh..wh..opq", Regular, 0o644, 0, None),
            ("var/www/", Directory, 0o750, 33, None),
        ]);
        let layers = [
            Arc::new(LayerIndex::read(lower.as_slice()).unwrap()),
            Arc::new(LayerIndex::read(upper.as_slice()).unwrap()),
        ];
        let wanted = [
            "tmp",
            "var/www",
            "var/www/old",
            "var/run",
            "srv",
            "srv/data",
            "opt",
        ]
        .map(String::from)
        .into();
        let found = base_entries(&layers, &wanted);
        assert_eq!(
            found,
            BTreeMap::from([
                (
                    "tmp".into(),
                    BaseEntry::Dir {
                        mode: 0o1777,
                        uid: 0,
                        gid: 0
                    }
                ),
                (
                    "var/www".into(),
                    BaseEntry::Dir {
                        mode: 0o750,
                        uid: 33,
                        gid: 33
                    }
                ),
                ("var/run".into(), BaseEntry::Symlink("/run".into())),
                (
                    "srv".into(),
                    BaseEntry::Dir {
                        mode: 0o755,
                        uid: 0,
                        gid: 0
                    }
                ),
            ])
        );
    }

    #[test]
    fn a_whiteout_removes_everything_below_it_in_lower_layers_only() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let lower = tar(&[
            ("opt/", Directory, 0o755, 0, None),
            ("opt/www/", Directory, 0o700, 33, None),
            ("opt/link", Symlink, 0o777, 0, Some("/nowhere")),
            ("srv/", Directory, 0o755, 0, None),
            ("srv/a/", Directory, 0o700, 5, None),
        ]);
        // `/opt` removed; `/srv` removed and made again in the same layer (the whiteout does not
        // touch the layer's own entries, whatever their order in the tar).
        let upper = tar(&[
            (".wh.opt", Regular, 0o644, 0, None),
            ("srv/", Directory, 0o750, 7, None),
            (".wh.srv", Regular, 0o644, 0, None),
        ]);
        let layers = [
            Arc::new(LayerIndex::read(lower.as_slice()).unwrap()),
            Arc::new(LayerIndex::read(upper.as_slice()).unwrap()),
        ];
        let wanted = ["opt", "opt/www", "opt/link", "srv", "srv/a"]
            .map(String::from)
            .into();
        assert_eq!(
            base_entries(&layers, &wanted),
            BTreeMap::from([(
                "srv".into(),
                BaseEntry::Dir {
                    mode: 0o750,
                    uid: 7,
                    gid: 7
                }
            )])
        );
        // An opaque root hides every lower entry.
        let opaque_root = tar(&[(".wh..wh..opq", Regular, 0o644, 0, None)]);
        let layers = [
            Arc::new(LayerIndex::read(lower.as_slice()).unwrap()),
            Arc::new(LayerIndex::read(opaque_root.as_slice()).unwrap()),
        ];
        assert_eq!(base_entries(&layers, &wanted), BTreeMap::new());
    }

    #[test]
    fn a_base_whose_manifest_and_config_disagree_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = Base {
            config: Some(br#"{"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#.to_vec()),
            layers: Vec::new(),
        };
        let err = assemble(
            &base,
            &assembly(),
            &BTreeMap::new(),
            std::io::empty(),
            dir.path(),
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::Layout(_)), "{err}");
    }

    #[test]
    fn the_layer_is_normalized_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_mtime(12345);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        raw.append_data(&mut h, "srv/", std::io::empty()).unwrap();
        let raw = raw.into_inner().unwrap();
        let image = assemble(
            &Base::default(),
            &assembly(),
            &BTreeMap::new(),
            raw.as_slice(),
            dir.path(),
        )
        .unwrap();
        assert_eq!(image.layers().len(), 1);
        let mut layer = tar::Archive::new(image.open_layer(0).unwrap());
        let entry = layer.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.header().mtime().unwrap(), 0, "normalized");
        assert_eq!(&*entry.path_bytes(), b"srv/");
        // Opened again from disk, it is the same image.
        let again = NormalizedImage::open(dir.path()).unwrap();
        assert_eq!(again.manifest_digest(), image.manifest_digest());
    }
}
