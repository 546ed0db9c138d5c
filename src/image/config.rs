//! The image configuration rewritten without the build's clock, host and daemon, serialized
//! canonically (RFC 8785 / JCS through serde_json_canonicalizer, the crate the input hash uses:
//! sorted keys and one number format, whatever map type serde_json was built with).
//!
//! Fields are edited on a `serde_json::Value`, not a typed struct, so that fields this module does
//! not know (a newer engine's, `config.Healthcheck`, …) are kept exactly instead of dropped.

use serde_json::Value;

use super::{ImageError, EPOCH};

/// Top-level config fields naming the build container or the daemon that built it.
const REMOVED_TOP: [&str; 3] = ["container", "container_config", "docker_version"];
/// `config.*` fields naming the build container (its hostname is its id) and the parent image
/// id the classic builder started it from.
const REMOVED_RUNTIME: [&str; 2] = ["Hostname", "Image"];

/// Rewrites the config JSON `raw` (see the module header) with `diff_ids` as its layers'
/// diff_ids and returns its canonical bytes.
pub fn normalize_config(raw: &[u8], diff_ids: &[String]) -> Result<Vec<u8>, ImageError> {
    let json = |source| ImageError::Json {
        what: "config",
        source,
    };
    let mut config: Value = serde_json::from_slice(raw).map_err(json)?;
    let Some(top) = config.as_object_mut() else {
        return Err(ImageError::Layout(
            "the image config is not an object".into(),
        ));
    };
    top.insert("created".into(), Value::String(EPOCH.into()));
    for field in REMOVED_TOP {
        top.remove(field);
    }
    if let Some(runtime) = top.get_mut("config").and_then(Value::as_object_mut) {
        for field in REMOVED_RUNTIME {
            runtime.remove(field);
        }
    }
    if let Some(history) = top.get_mut("history").and_then(Value::as_array_mut) {
        for step in history.iter_mut().filter_map(Value::as_object_mut) {
            if step.contains_key("created") {
                step.insert("created".into(), Value::String(EPOCH.into()));
            }
        }
    }
    let rootfs = top
        .get_mut("rootfs")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ImageError::Layout("the image config has no rootfs".into()))?;
    rootfs.insert(
        "diff_ids".into(),
        Value::Array(diff_ids.iter().cloned().map(Value::String).collect()),
    );
    serde_json_canonicalizer::to_vec(&config).map_err(json)
}

/// The diff_ids a config states, in order.
pub(crate) fn diff_ids(raw: &[u8]) -> Result<Vec<String>, ImageError> {
    let config: Value = serde_json::from_slice(raw).map_err(|source| ImageError::Json {
        what: "config",
        source,
    })?;
    config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .and_then(|ids| {
            ids.iter()
                .map(|id| id.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or_else(|| ImageError::Layout("the image config has no rootfs.diff_ids list".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_host_and_daemon_are_removed_and_keys_sorted() {
        let raw = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:old"]},
            "created":"2026-11-29T13:07:01.123Z","docker_version":"20.10.24",
            "container":"abc","container_config":{"Hostname":"abc"},
            "config":{"Hostname":"abc","Image":"sha256:parent","Env":["A=1"],"Cmd":["sh"]},
            "history":[{"created":"2026-11-29T13:07:00Z","created_by":"RUN x"},{"created_by":"y"}],
            "architecture":"amd64","os":"linux"}"#;
        let out = normalize_config(raw, &["sha256:new".into()]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"architecture":"amd64","config":{"Cmd":["sh"],"Env":["A=1"]},"created":"1970-01-01T00:00:00Z","history":[{"created":"1970-01-01T00:00:00Z","created_by":"RUN x"},{"created_by":"y"}],"os":"linux","rootfs":{"diff_ids":["sha256:new"],"type":"layers"}}"#
        );
    }

    #[test]
    fn a_config_without_rootfs_is_refused() {
        let err = normalize_config(br#"{"config":{}}"#, &[]).unwrap_err();
        assert!(matches!(err, ImageError::Layout(_)), "{err}");
        let err = normalize_config(b"[1", &[]).unwrap_err();
        assert!(matches!(err, ImageError::Json { .. }), "{err}");
    }
}
