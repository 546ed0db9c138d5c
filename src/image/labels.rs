//! What cookbook stamps on every image it builds: the label keys, named as `image` and `verify`
//! always named them. The keys themselves live with every other key cookbook writes, in
//! `crate::labels`.

pub use crate::labels::image::{
    CONTAINER as LABEL_CONTAINER, INPUT_HASH as LABEL_INPUT_HASH, PROJECT as LABEL_PROJECT,
};
