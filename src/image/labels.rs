//! What cookbook stamps on every image it builds: the label keys.
//!
//! Place in the pipeline: `apply` writes these labels at build time; `verify --registry` reads
//! them back from the registry's image configuration. Kept apart from both so that neither edge
//! imports the other.

/// The container's input hash: what the image was built from.
pub const LABEL_INPUT_HASH: &str = "dev.cookbook.input-hash";
/// The cookbook's `project.name`.
pub const LABEL_PROJECT: &str = "dev.cookbook.project";
/// The container's name in the cookbook.
pub const LABEL_CONTAINER: &str = "dev.cookbook.container";
