//! Every label and annotation key cookbook writes, in one place.
//!
//! Two families share the `dev.cookbook.` prefix:
//! - on every image `apply` builds ([`image`]): what it was built from. These keys are inside
//!   every published image configuration, so renaming one changes every digest: they never move.
//! - on what `deploy` creates on a site ([`deploy`]): containers and networks on a Docker engine,
//!   Deployments, Services and Namespaces on a cluster. They say whose an object is (project, site,
//!   stage, container), which release made it and the hash of its runtime settings.
//!
//! Versions before issue 21 wrote the deploy keys under `io.cookbook.` ([`legacy`]). Deploy reads
//! both and writes only the new: an object labelled the old way is still recognised as the stage's
//! own, and the next deploy replaces it (its old config hash is not trusted), so an upgrade never
//! refuses its own namesake. Kubernetes selectors use `app.kubernetes.io/instance` ([`kubernetes`]).
//!
//! Pure: no imports, so the model, the edges and the flows can all name these keys.

/// Stamped on every image at build time; `verify --registry` reads them back.
pub mod image {
    /// The container's input hash: what the image was built from.
    pub const INPUT_HASH: &str = "dev.cookbook.input-hash";
    /// The cookbook's `project.name`.
    pub const PROJECT: &str = "dev.cookbook.project";
    /// The container's name in the cookbook.
    pub const CONTAINER: &str = "dev.cookbook.container";
    /// Every key above: a container's own label of one of them has no effect.
    pub const ALL: [&str; 3] = [INPUT_HASH, PROJECT, CONTAINER];

    /// The OCI annotation keys apply also writes as labels.
    pub const OCI_TITLE: &str = "org.opencontainers.image.title";
    pub const OCI_SOURCE: &str = "org.opencontainers.image.source";
    pub const OCI_REVISION: &str = "org.opencontainers.image.revision";
    pub const OCI_VERSION: &str = "org.opencontainers.image.version";
}

/// On every container, network and Kubernetes object a deploy creates. `PROJECT` and `CONTAINER`
/// are the image's keys: a container's image carries the same values, so the two never disagree.
pub mod deploy {
    pub const PROJECT: &str = super::image::PROJECT;
    pub const SITE: &str = "dev.cookbook.site";
    pub const STAGE: &str = "dev.cookbook.stage";
    pub const CONTAINER: &str = super::image::CONTAINER;
    /// The release that created it.
    pub const RELEASE: &str = "dev.cookbook.release";
    /// SHA-256 over the image digest and every runtime setting: equal means nothing to change.
    /// A label on Docker, an annotation on Kubernetes.
    pub const CONFIG_HASH: &str = "dev.cookbook.config-hash";
    /// Kubernetes: the image reference the Deployment runs (an annotation).
    pub const IMAGE: &str = "dev.cookbook.image";
    /// Docker: on a pod's member (an init container, a sidecar) and on its scratch volumes, the
    /// engine name of the pod's main container; they are removed with it.
    pub const POD: &str = "dev.cookbook.pod";
    /// Docker: a pod member's role, `init` or `sidecar`.
    pub const ROLE: &str = "dev.cookbook.role";
    /// Docker: on a volume, the pod volume it is (its container: `CONTAINER`).
    pub const VOLUME: &str = "dev.cookbook.volume";
}

/// On the OCI artifacts `apply` attaches to an image (provenance, SBOM): annotations of the
/// artifact manifest, which the referrers list repeats, so a reader tells the kinds (and the
/// signer) apart without fetching each one. What they say is a hint for choosing; only the
/// signed statement inside is trusted.
pub mod attestation {
    /// The in-toto statement's predicate type (the key BuildKit's attestations use too).
    pub const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
    /// The key id of the envelope's signature (`sha256:<hex of the public key's SPKI DER>`).
    pub const KEY_ID: &str = "dev.cookbook.attestation.key-id";
}

/// On the OCI artifacts `approve --signing-key` attaches to the approved images (the key id is
/// [`attestation::KEY_ID`]): hints for a reader of the referrers list; the decision is the
/// signed statement's.
pub mod approval {
    /// The stage the approval opens.
    pub const STAGE: &str = "dev.cookbook.approval.stage";
}

/// The deploy keys as versions before issue 21 wrote them: read (an object so labelled is still
/// ours), never written.
pub mod legacy {
    pub const PROJECT: &str = "io.cookbook.project";
    pub const SITE: &str = "io.cookbook.site";
    pub const STAGE: &str = "io.cookbook.stage";
    pub const CONTAINER: &str = "io.cookbook.container";
    pub const RELEASE: &str = "io.cookbook.release";
    pub const CONFIG_HASH: &str = "io.cookbook.config-hash";
}

/// The Kubernetes recommended labels cookbook sets on its objects.
pub mod kubernetes {
    pub const NAME: &str = "app.kubernetes.io/name";
    /// What Deployments select their pods by, and Services their endpoints.
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
}

/// The ownership keys (project, site, stage, container) in the new scheme and the old, for
/// readers that accept either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    pub project: &'static str,
    pub site: &'static str,
    pub stage: &'static str,
    pub container: &'static str,
    pub config_hash: &'static str,
}

/// The scheme deploy writes.
pub const CURRENT: Scheme = Scheme {
    project: deploy::PROJECT,
    site: deploy::SITE,
    stage: deploy::STAGE,
    container: deploy::CONTAINER,
    config_hash: deploy::CONFIG_HASH,
};

/// The scheme versions before issue 21 wrote.
pub const LEGACY: Scheme = Scheme {
    project: legacy::PROJECT,
    site: legacy::SITE,
    stage: legacy::STAGE,
    container: legacy::CONTAINER,
    config_hash: legacy::CONFIG_HASH,
};

/// Every scheme deploy recognises as its own, newest first.
pub const SCHEMES: [Scheme; 2] = [CURRENT, LEGACY];
