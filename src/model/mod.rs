//! The cookbook model: wire types that mirror the JSON (`wire`) and the validated `Cookbook`
//! (`cookbook`) they are converted into, once, with every problem collected as a diagnostic.
//!
//! Pipeline position: schema-checked JSON → **wire types → `Cookbook`** → plan (`graph`). The
//! front end that composes the stages is `crate::load`; this module knows nothing of the schema
//! or the plan. Pure: no file system, no network.

mod cookbook;
pub(crate) use cookbook::convert;
pub mod lifecycle;
mod name;
pub mod pod;
mod relpath;
pub mod wire;

pub use cookbook::{is_local_image, suggest};
pub use cookbook::{
    Application, BaseImage, Builder, Container, ContainerKind, Cookbook, Dependencies,
    DockerfileBuild, EngineSpec, Generated, Packaging, PathKind, PathUse, Port, Project, Protocol,
    RunCommand, Site, Tagging, TlsSpec, LOCAL_REPOSITORY_PREFIX, SCRATCH,
};
pub use name::Name;
pub use relpath::{RelPath, RelPathError};
