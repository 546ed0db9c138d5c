//! The labels every image cookbook builds carries, engine-built or assembled, by `apply` and
//! again by `verify --rebuild` (which must build the same bytes).
//!
//! cookbook's own keys (input hash, project, container) are `crate::image`'s; the OCI annotation
//! keys are here, each in one place.

use std::collections::BTreeMap;

use crate::image::{LABEL_CONTAINER, LABEL_INPUT_HASH, LABEL_PROJECT};
use crate::model::{ContainerKind, Cookbook, Name};

/// The commit the image was first built at (`apply` reuses an image for every later commit with
/// the same input hash, so `verify --rebuild` reads it back from the locked image).
pub const LABEL_REVISION: &str = crate::labels::image::OCI_REVISION;
/// The container's name.
pub const LABEL_TITLE: &str = crate::labels::image::OCI_TITLE;
/// The cookbook's `project.repository`.
pub const LABEL_SOURCE: &str = crate::labels::image::OCI_SOURCE;
/// The cookbook's `packaging.version`.
pub const LABEL_VERSION: &str = crate::labels::image::OCI_VERSION;

/// The labels of container `name`'s image at `input_hash`, built at `revision` when known.
///
/// cookbook's own keys (input hash, project, container) identify the image and are always
/// stamped. The OCI keys (title, source, revision, version) are defaults: a generated
/// container's own label of one of those keys is kept (its Dockerfile's `LABEL`), as a Bake
/// user expects of a label written in the build file, instead of being overwritten silently.
pub fn image_labels(
    cookbook: &Cookbook,
    name: &Name,
    input_hash: &str,
    revision: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_INPUT_HASH.to_owned(), input_hash.to_owned()),
        (LABEL_PROJECT.to_owned(), cookbook.project.name.to_string()),
        (LABEL_CONTAINER.to_owned(), name.to_string()),
        (LABEL_TITLE.to_owned(), name.to_string()),
    ]);
    if let Some(source) = &cookbook.project.repository {
        labels.insert(LABEL_SOURCE.to_owned(), source.clone());
    }
    if let Some(rev) = revision {
        labels.insert(LABEL_REVISION.to_owned(), rev.to_owned());
    }
    if let Some(version) = &cookbook.packaging.version {
        labels.insert(LABEL_VERSION.to_owned(), version.clone());
    }
    if let Some(ContainerKind::Generated(g)) = cookbook.containers.get(name).map(|c| &c.kind) {
        for key in [LABEL_TITLE, LABEL_SOURCE, LABEL_REVISION, LABEL_VERSION] {
            if g.labels.contains_key(key) {
                labels.remove(key);
            }
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookbook(labels: &str) -> Cookbook {
        let text = format!(
            r#"{{"manifest_version": "1.0", "project": {{"name": "p", "repository": "https://example.com/p"}},
                "applications": {{"a": {{"language": "python", "source": "a"}}}},
                "containers": {{"c": {{"base_image": "python:3.12-slim", "applications": ["a"], "labels": {labels}}}}},
                "packaging": {{"version": "1.2.3"}}}}"#
        );
        crate::load::parse(text.as_bytes()).unwrap().cookbook
    }

    #[test]
    fn a_containers_own_oci_label_is_kept_and_cookbooks_own_keys_always_stamped() {
        let name = Name::parse("c").unwrap();
        let stamped = image_labels(&cookbook("{}"), &name, "h", Some("r"));
        assert_eq!(stamped[LABEL_TITLE], "c");
        assert_eq!(stamped[LABEL_SOURCE], "https://example.com/p");
        assert_eq!(stamped[LABEL_REVISION], "r");
        assert_eq!(stamped[LABEL_VERSION], "1.2.3");
        let own = cookbook(
            r#"{"org.opencontainers.image.title": "Mine", "org.opencontainers.image.version": "9"}"#,
        );
        let labels = image_labels(&own, &name, "h", Some("r"));
        // Left to the container's LABEL lines; the rest as before.
        assert!(!labels.contains_key(LABEL_TITLE) && !labels.contains_key(LABEL_VERSION));
        assert_eq!(labels[LABEL_SOURCE], "https://example.com/p");
        assert_eq!(labels[LABEL_INPUT_HASH], "h");
        assert_eq!(labels[LABEL_CONTAINER], "c");
    }
}
