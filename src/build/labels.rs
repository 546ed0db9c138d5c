//! The labels every image cookbook builds carries, engine-built or assembled, by `apply` and
//! again by `verify --rebuild` (which must build the same bytes).
//!
//! cookbook's own keys (input hash, project, container) are `crate::image`'s; the OCI annotation
//! keys are here, each in one place.

use std::collections::BTreeMap;

use crate::image::{LABEL_CONTAINER, LABEL_INPUT_HASH, LABEL_PROJECT};
use crate::model::{Cookbook, Name};

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
    labels
}
