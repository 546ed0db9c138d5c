//! Image normalization (`cookbook::image`): golden vectors for a small image built here from plain
//! values, property tests that build-time noise never moves a digest while content does, the
//! `diff` that names why two images differ, and the real engine: the same Dockerfile built twice
//! gives different exports but one normalized digest, and the normalized tar loads and runs.

use crate::common;

use std::io::{Read, Write};
use std::path::Path;

use cookbook::image::{
    diff, normalize, normalize_layer, Compression, EntryAspect, ImageDifference, NormalizeOptions,
    NormalizedImage,
};
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------- a fixed image from plain values

/// What varies between two builds of the same image (the noise normalization removes) and what
/// must not (the content).
#[derive(Debug, Clone)]
struct Build {
    // Noise.
    mtime: u64,
    uname: String,
    created: String,
    hostname: String,
    atime_record: bool,
    // Content.
    script: String,
    script_mode: u32,
    script_uid: u64,
    link_target: String,
    secret_path: String,
}

impl Default for Build {
    fn default() -> Build {
        Build {
            mtime: 1_795_000_000,
            uname: "builder".into(),
            created: "2026-11-29T13:07:01.123456789Z".into(),
            hostname: "4f2c1d9e8a7b".into(),
            atime_record: true,
            script: "#!/bin/sh\necho hello\n".into(),
            script_mode: 0o755,
            script_uid: 1000,
            link_target: "run.sh".into(),
            secret_path: "app/secret".into(),
        }
    }
}

const LONG_DIR: &str = "app/a-directory-name-long-enough-that-the-path-does-not-fit-the-hundred-bytes-of-a-tar-header-name-field";
const CAPABILITY: &[u8] =
    b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

fn header(kind: tar::EntryType, mode: u32, uid: u64, size: u64, build: &Build) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_size(size);
    h.set_mtime(build.mtime);
    h.set_username(&build.uname).unwrap();
    h.set_groupname(&build.uname).unwrap();
    h
}

/// The base image's one layer: fixed, with its own (non-zero) mtimes, carried as is.
fn base_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let build = Build {
        mtime: 1_600_000_000,
        uname: "root".into(),
        ..Build::default()
    };
    let mut h = header(tar::EntryType::Directory, 0o755, 0, 0, &build);
    b.append_data(&mut h, "bin/", std::io::empty()).unwrap();
    let body = b"#!base shell\n";
    let mut h = header(tar::EntryType::Regular, 0o755, 0, body.len() as u64, &build);
    b.append_data(&mut h, "bin/sh", &body[..]).unwrap();
    b.into_inner().unwrap()
}

/// The built layer, written as a builder would: wall-clock mtimes, user names, PAX atime/ctime
/// records, a capability xattr and another xattr, a long name, a symlink, a hard link, setuid.
fn app_layer(build: &Build) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Directory, 0o755, 0, 0, build);
    b.append_data(&mut h, "app/", std::io::empty()).unwrap();

    let script = build.script.as_bytes();
    let mut h = header(
        tar::EntryType::Regular,
        build.script_mode,
        build.script_uid,
        script.len() as u64,
        build,
    );
    b.append_data(&mut h, "app/run.sh", script).unwrap();

    let secret = b"s3cr3t\n";
    let mut h = header(
        tar::EntryType::Regular,
        0o600,
        1000,
        secret.len() as u64,
        build,
    );
    b.append_data(&mut h, &build.secret_path, &secret[..])
        .unwrap();

    let mut records: Vec<(&str, Vec<u8>)> = vec![
        ("SCHILY.xattr.security.capability", CAPABILITY.to_vec()),
        ("SCHILY.xattr.user.origin", b"builder-host".to_vec()),
    ];
    if build.atime_record {
        records.push(("atime", format!("{}.5", build.mtime).into_bytes()));
        records.push(("ctime", format!("{}.25", build.mtime).into_bytes()));
    }
    b.append_pax_extensions(records.iter().map(|(k, v)| (*k, v.as_slice())))
        .unwrap();
    let ping = b"\x7fELF ping";
    let mut h = header(tar::EntryType::Regular, 0o755, 0, ping.len() as u64, build);
    b.append_data(&mut h, "app/ping", &ping[..]).unwrap();

    let mut h = header(tar::EntryType::Directory, 0o755, 0, 0, build);
    b.append_data(&mut h, format!("{LONG_DIR}/"), std::io::empty())
        .unwrap();
    let long = b"long\n";
    let mut h = header(tar::EntryType::Regular, 0o644, 0, long.len() as u64, build);
    b.append_data(&mut h, format!("{LONG_DIR}/file.txt"), &long[..])
        .unwrap();

    let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0, build);
    b.append_link(&mut h, "app/current", &build.link_target)
        .unwrap();
    let mut h = header(tar::EntryType::Link, 0o755, 0, 0, build);
    b.append_link(&mut h, "app/run-again", "app/run.sh")
        .unwrap();

    let tool = b"setuid tool";
    let mut h = header(tar::EntryType::Regular, 0o4755, 0, tool.len() as u64, build);
    b.append_data(&mut h, "app/tool", &tool[..]).unwrap();
    b.into_inner().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `docker save`'s legacy layout (what Docker 20.10 writes) for the base layer plus the built
/// layer, with a classic-builder config.
/// The classic builder's config for the fixed image (clock, host, daemon, parent id included).
fn builder_config(build: &Build) -> Vec<u8> {
    let (base, app) = (base_layer(), app_layer(build));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": build.created,
        "docker_version": "20.10.24+dfsg1",
        "container": build.hostname,
        "container_config": {"Hostname": build.hostname, "Cmd": ["/bin/sh", "-c", "#(nop) COPY"]},
        "config": {
            "Hostname": build.hostname,
            "Image": format!("sha256:{}", "1".repeat(64)),
            "Env": ["PATH=/bin"],
            "Cmd": ["/app/run.sh"],
            "Labels": {"b": "2", "a": "1"},
        },
        "history": [
            {"created": "2020-09-13T12:26:40Z", "created_by": "/bin/sh -c #(nop) ADD file:base in /"},
            {"created": build.created, "created_by": "/bin/sh -c #(nop) COPY dir:abc in /app"},
            {"created": build.created, "created_by": "/bin/sh -c #(nop)  CMD [\"/app/run.sh\"]", "empty_layer": true},
        ],
        "rootfs": {"type": "layers", "diff_ids": [sha256(&base), sha256(&app)]},
    });
    serde_json::to_vec(&config).unwrap()
}

fn legacy_export(build: &Build) -> Vec<u8> {
    let (base, app) = (base_layer(), app_layer(build));
    let config = builder_config(build);
    let config_name = format!("{}.json", &sha256(&config)[7..]);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["example/app:latest"],
        "Layers": ["aaaa/layer.tar", "bbbb/layer.tar"],
    }]))
    .unwrap();
    let mut out = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(build.mtime);
        out.append_data(&mut h, name, bytes).unwrap();
    };
    add(&config_name, &config);
    add("aaaa/layer.tar", &base);
    add("bbbb/layer.tar", &app);
    add("manifest.json", &manifest);
    out.into_inner().unwrap()
}

fn base_options(compression: Compression) -> NormalizeOptions {
    NormalizeOptions {
        base_diff_ids: vec![sha256(&base_layer())],
        compression,
    }
}

fn normalized(build: &Build, compression: Compression) -> (tempfile::TempDir, NormalizedImage) {
    let dir = tempfile::tempdir().unwrap();
    let image = normalize(
        legacy_export(build).as_slice(),
        &base_options(compression),
        dir.path(),
    )
    .unwrap();
    (dir, image)
}

// ---------------------------------------------------------------- golden vectors

/// The normalized config of the fixed image, byte for byte: clock, host, daemon and parent id
/// gone, keys sorted, the new diff_ids.
const GOLDEN_CONFIG: &str = concat!(
    r##"{"architecture":"amd64","config":{"Cmd":["/app/run.sh"],"Env":["PATH=/bin"],"Labels":{"a":"1","b":"2"}},"created":"1970-01-01T00:00:00Z","history":[{"created":"1970-01-01T00:00:00Z","created_by":"/bin/sh -c #(nop) ADD file:base in /"},{"created":"1970-01-01T00:00:00Z","created_by":"/bin/sh -c #(nop) COPY dir:abc in /app"},{"created":"1970-01-01T00:00:00Z","created_by":"/bin/sh -c #(nop)  CMD [\"/a"##,
    r##"pp/run.sh\"]","empty_layer":true}],"os":"linux","rootfs":{"diff_ids":["sha256:fb9b7d140f1c5fe65f8c9a994bd9b51d3dc445201d27c0f0989531ac3b2cee73","sha256:a04e7f1ddf27c99ab519e666f0514eb4569e0687015a6ceb35b59455a6e72350"],"type":"layers"}}"##
);
/// The manifest with the default compression (none: the layer digest is the diff_id).
const GOLDEN_MANIFEST: &str = concat!(
    r##"{"config":{"digest":"sha256:9273cdd77eb4d70769edfea82772839685cc7cdc8569729de8e0f39d1e25da3f","mediaType":"application/vnd.oci.image.config.v1+json","size":636},"layers":[{"digest":"sha256:fb9b7d140f1c5fe65f8c9a994bd9b51d3dc445201d27c0f0989531ac3b2cee73","mediaType":"application/vnd.oci.image.layer."##,
    r##"v1.tar","size":2560},{"digest":"sha256:a04e7f1ddf27c99ab519e666f0514eb4569e0687015a6ceb35b59455a6e72350","mediaType":"application/vnd.oci.image.layer.v1.tar","size":11264}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}"##
);
const GOLDEN_MANIFEST_DIGEST: &str =
    "sha256:5ec9706041a2a36c586251bdd8cd711066c724ba8c8d0a4c52dc180f1cf053f1";
/// The same image with gzip layers (flate2 on miniz_oxide at level 6, pinned in Cargo.lock): the
/// layer digest pins the compressor's bytes.
const GOLDEN_GZIP_DIGEST: &str =
    "sha256:a387fb6b80bbdc8174728c2521b7dd9c9d18d8a7cef50f4da53292ca5928c584";

#[test]
fn golden_config_and_manifest_of_the_fixed_image() {
    let (_dir, image) = normalized(&Build::default(), Compression::default());
    assert_eq!(String::from_utf8_lossy(image.config()), GOLDEN_CONFIG);
    assert_eq!(String::from_utf8_lossy(image.manifest()), GOLDEN_MANIFEST);
    assert_eq!(image.manifest_digest().to_string(), GOLDEN_MANIFEST_DIGEST);
    assert_eq!(
        image.manifest_digest().to_string(),
        sha256(image.manifest())
    );
    assert_eq!(image.config_digest().to_string(), sha256(image.config()));

    let (_dir, gzip) = normalized(&Build::default(), Compression::Gzip);
    assert_eq!(gzip.manifest_digest().to_string(), GOLDEN_GZIP_DIGEST);
    // Same layers, same config: only the layer blobs' encoding differs.
    assert_eq!(gzip.config(), image.config());
}

#[test]
fn the_default_compression_is_none() {
    // docs/BENCHMARKS.md "Reproducible images" measured the choice; changing it changes every
    // published digest, so it is pinned here as well as by the golden manifest.
    assert_eq!(Compression::default(), Compression::None);
}

/// Every entry of a tar as (path, type, mode, uid, gid, mtime, uname, link, PAX keys, content).
type Entry = (
    String,
    u8,
    u32,
    u64,
    u64,
    u64,
    String,
    String,
    Vec<String>,
    Vec<u8>,
);

fn entries(tar_bytes: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let pax: Vec<String> = entry
            .pax_extensions()
            .unwrap()
            .map(|records| {
                records
                    .map(|r| r.unwrap().key().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let h = entry.header().clone();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).unwrap())
            .unwrap_or_default();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        out.push((
            path,
            h.entry_type().as_byte(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            String::from_utf8(h.username_bytes().unwrap_or_default().to_vec()).unwrap(),
            link,
            pax,
            content,
        ));
    }
    out
}

#[test]
fn a_normalized_layer_keeps_order_modes_owners_links_and_capabilities_only() {
    let input = app_layer(&Build::default());
    let (_, output, summary) = normalize_layer(input.as_slice(), Vec::new()).unwrap();
    let long_file = format!("{LONG_DIR}/file.txt");
    let long_dir = format!("{LONG_DIR}/");
    let expected: Vec<Entry> = vec![
        (
            "app/".into(),
            b'5',
            0o755,
            0,
            0,
            0,
            "".into(),
            "".into(),
            vec![],
            vec![],
        ),
        (
            "app/run.sh".into(),
            b'0',
            0o755,
            1000,
            1000,
            0,
            "".into(),
            "".into(),
            vec![],
            b"#!/bin/sh\necho hello\n".to_vec(),
        ),
        (
            "app/secret".into(),
            b'0',
            0o600,
            1000,
            1000,
            0,
            "".into(),
            "".into(),
            vec![],
            b"s3cr3t\n".to_vec(),
        ),
        (
            "app/ping".into(),
            b'0',
            0o755,
            0,
            0,
            0,
            "".into(),
            "".into(),
            vec!["SCHILY.xattr.security.capability".into()],
            b"\x7fELF ping".to_vec(),
        ),
        (
            long_dir,
            b'5',
            0o755,
            0,
            0,
            0,
            "".into(),
            "".into(),
            vec!["path".into()],
            vec![],
        ),
        (
            long_file,
            b'0',
            0o644,
            0,
            0,
            0,
            "".into(),
            "".into(),
            vec!["path".into()],
            b"long\n".to_vec(),
        ),
        (
            "app/current".into(),
            b'2',
            0o777,
            0,
            0,
            0,
            "".into(),
            "run.sh".into(),
            vec![],
            vec![],
        ),
        (
            "app/run-again".into(),
            b'1',
            0o755,
            0,
            0,
            0,
            "".into(),
            "app/run.sh".into(),
            vec![],
            vec![],
        ),
        (
            "app/tool".into(),
            b'0',
            0o4755,
            0,
            0,
            0,
            "".into(),
            "".into(),
            vec![],
            b"setuid tool".to_vec(),
        ),
    ];
    assert_eq!(entries(&output), expected);
    assert_eq!(summary.entries, 9);
    // atime, ctime and the user xattr.
    assert_eq!(summary.dropped_records, 3);
    // The capability record survives with its exact bytes.
    let mut archive = tar::Archive::new(output.as_slice());
    let mut ping = archive.entries().unwrap().nth(3).unwrap().unwrap();
    let record = ping
        .pax_extensions()
        .unwrap()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(record.value_bytes(), CAPABILITY);
    // Normalizing is idempotent.
    let (_, again, _) = normalize_layer(output.as_slice(), Vec::new()).unwrap();
    assert_eq!(again, output);
}

#[test]
fn base_layers_are_carried_byte_for_byte() {
    let (_dir, image) = normalized(&Build::default(), Compression::Gzip);
    let base = &image.layers()[0];
    assert_eq!(base.diff_id.to_string(), sha256(&base_layer()));
    assert_eq!(base.digest, base.diff_id);
    let blob = std::fs::read(image.blob_path(&base.digest)).unwrap();
    assert_eq!(blob, base_layer());
    // …and the built layer is gzip whose content is the normalized tar.
    let app = &image.layers()[1];
    let mut tar_bytes = Vec::new();
    image
        .open_layer(1)
        .unwrap()
        .read_to_end(&mut tar_bytes)
        .unwrap();
    assert_eq!(app.diff_id.to_string(), sha256(&tar_bytes));
    let (_, expected, _) =
        normalize_layer(app_layer(&Build::default()).as_slice(), Vec::new()).unwrap();
    assert_eq!(tar_bytes, expected);
}

#[test]
fn a_layout_reads_back_as_the_same_image() {
    let (dir, image) = normalized(&Build::default(), Compression::Gzip);
    let opened = NormalizedImage::open(dir.path()).unwrap();
    assert_eq!(opened.manifest_digest(), image.manifest_digest());
    assert_eq!(opened.config_digest(), image.config_digest());
    assert_eq!(opened.layers(), image.layers());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // The scratch spool is gone.
    assert_eq!(names, ["blobs", "index.json", "oci-layout"]);
}

#[test]
fn an_image_not_built_on_its_base_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = NormalizeOptions {
        base_diff_ids: vec![format!("sha256:{}", "0".repeat(64))],
        compression: Compression::None,
    };
    let err = normalize(
        legacy_export(&Build::default()).as_slice(),
        &options,
        dir.path(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("layer 0"), "{err}");
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_refused() {
    // The export's config says the app layer is other bytes than it is.
    let export = legacy_export(&Build::default());
    let mut archive = tar::Archive::new(export.as_slice());
    let mut out = tar::Builder::new(Vec::new());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        let name = entry.path().unwrap().into_owned();
        if name == Path::new("bbbb/layer.tar") {
            bytes = app_layer(&Build {
                script: "tampered".into(),
                ..Build::default()
            });
        }
        let mut h = entry.header().clone();
        h.set_size(bytes.len() as u64);
        out.append_data(&mut h, &name, bytes.as_slice()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let err = normalize(
        out.into_inner().unwrap().as_slice(),
        &base_options(Compression::None),
        dir.path(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("layer 1 of the exported image hashes to"),
        "{err}"
    );
}

// ---------------------------------------------------------------- invariance

fn digest_of(build: &Build) -> String {
    normalized(build, Compression::Gzip)
        .1
        .manifest_digest()
        .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Build-time noise — mtimes, user names, creation time, hostname, atime/ctime records —
    /// never moves the digest.
    #[test]
    fn noise_does_not_move_the_digest(
        mtime in 0u64..4_000_000_000,
        uname in "[a-z]{0,12}",
        secs in 0u32..60,
        hostname in "[0-9a-f]{12}",
        atime_record in any::<bool>(),
    ) {
        let noisy = Build {
            mtime,
            uname,
            created: format!("2031-01-02T03:04:{secs:02}.5Z"),
            hostname,
            atime_record,
            ..Build::default()
        };
        prop_assert_eq!(digest_of(&noisy), digest_of(&Build::default()));
    }

    /// Content, mode, owner and link target each move it.
    #[test]
    fn content_mode_owner_and_link_target_move_the_digest(
        script in "[a-z ]{1,40}",
        mode in prop::sample::select(vec![0o700u32, 0o750, 0o644, 0o2755]),
        uid in prop::sample::select(vec![0u64, 1, 65534, 3_000_000]),
        link in "[a-z]{1,8}",
    ) {
        let base = digest_of(&Build::default());
        let changes = [
            Build { script: script.clone(), ..Build::default() },
            Build { script_mode: mode, ..Build::default() },
            Build { script_uid: uid, ..Build::default() },
            Build { link_target: link.clone(), ..Build::default() },
        ];
        for change in changes {
            prop_assert_ne!(digest_of(&change), base.clone(), "{:?}", change);
        }
    }
}

// ---------------------------------------------------------------- diff

#[test]
fn identical_images_have_no_difference() {
    let (_a, left) = normalized(&Build::default(), Compression::Gzip);
    let (_b, right) = normalized(
        &Build {
            mtime: 1,
            ..Build::default()
        },
        Compression::Gzip,
    );
    assert_eq!(diff(&left, &right, 10).unwrap(), None);
}

#[test]
fn diff_names_the_layer_and_each_differing_path() {
    let (_a, left) = normalized(&Build::default(), Compression::Gzip);
    let (_b, right) = normalized(
        &Build {
            script: "#!/bin/sh\ndate\n".into(),
            script_mode: 0o700,
            script_uid: 0,
            link_target: "tool".into(),
            ..Build::default()
        },
        Compression::None,
    );
    let Some(ImageDifference::Layer {
        index,
        left_diff_id,
        right_diff_id,
        paths,
    }) = diff(&left, &right, 10).unwrap()
    else {
        panic!("expected a layer difference");
    };
    assert_eq!(index, 1);
    assert_eq!(left_diff_id, left.layers()[1].diff_id.to_string());
    assert_eq!(right_diff_id, right.layers()[1].diff_id.to_string());
    let found: Vec<(String, Vec<EntryAspect>)> =
        paths.into_iter().map(|p| (p.path, p.aspects)).collect();
    assert_eq!(
        found,
        vec![
            (
                "app/run.sh".to_owned(),
                vec![
                    EntryAspect::Content,
                    EntryAspect::Mode {
                        left: 0o755,
                        right: 0o700
                    },
                    EntryAspect::Owner {
                        left: (1000, 1000),
                        right: (0, 0)
                    },
                ]
            ),
            (
                "app/current".to_owned(),
                vec![EntryAspect::LinkTarget {
                    left: "run.sh".into(),
                    right: "tool".into()
                }]
            ),
        ]
    );
    // The first path only, when asked for one.
    let Some(ImageDifference::Layer { paths, .. }) = diff(&left, &right, 1).unwrap() else {
        panic!("expected a layer difference");
    };
    assert_eq!(paths.len(), 1);
}

#[test]
fn diff_reports_paths_on_one_side_only_and_config_only_changes() {
    let (_a, left) = normalized(&Build::default(), Compression::Gzip);
    // A layer whose paths differ: app_layer with one file renamed by a long directory.
    let renamed = Build {
        link_target: "run.sh".into(),
        ..Build::default()
    };
    let (_b, same) = normalized(&renamed, Compression::Gzip);
    assert_eq!(diff(&left, &same, 10).unwrap(), None);

    // Same layers, other config: an environment variable (written into the export's config).
    let export = legacy_export(&Build::default());
    let edited = rewrite_config(&export, |config| {
        config["config"]["Env"] = serde_json::json!(["PATH=/bin", "MODE=debug"]);
    });
    let dir = tempfile::tempdir().unwrap();
    let other = normalize(
        edited.as_slice(),
        &base_options(Compression::Gzip),
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        diff(&left, &other, 10).unwrap(),
        Some(ImageDifference::Config)
    );

    // Same layers and config, other compression: only the manifest differs.
    let (_c, plain) = normalized(&Build::default(), Compression::None);
    assert_eq!(
        diff(&left, &plain, 10).unwrap(),
        Some(ImageDifference::Manifest)
    );
}

#[test]
fn diff_lists_paths_only_on_one_side() {
    let (_a, left) = normalized(&Build::default(), Compression::None);
    let (_b, right) = normalized(
        &Build {
            secret_path: "app/extra".into(),
            ..Build::default()
        },
        Compression::None,
    );
    let Some(ImageDifference::Layer { index, paths, .. }) = diff(&left, &right, 10).unwrap() else {
        panic!("expected a layer difference");
    };
    assert_eq!(index, 1);
    let found: Vec<(String, Vec<EntryAspect>)> =
        paths.into_iter().map(|p| (p.path, p.aspects)).collect();
    assert_eq!(
        found,
        vec![
            ("app/secret".to_owned(), vec![EntryAspect::OnlyInLeft]),
            ("app/extra".to_owned(), vec![EntryAspect::OnlyInRight]),
        ]
    );
}

/// The fixed export with its config edited by `edit` (diff_ids kept).
fn rewrite_config(export: &[u8], edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let mut archive = tar::Archive::new(export);
    let mut out = tar::Builder::new(Vec::new());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        let name = entry.path().unwrap().into_owned();
        if name.extension().is_some_and(|e| e == "json") && name != Path::new("manifest.json") {
            let mut config: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            edit(&mut config);
            bytes = serde_json::to_vec(&config).unwrap();
        }
        let mut h = entry.header().clone();
        h.set_size(bytes.len() as u64);
        out.append_data(&mut h, &name, bytes.as_slice()).unwrap();
    }
    out.into_inner().unwrap()
}

/// The fixed image in the OCI layout Docker 25+ writes (blobs, index.json, manifest.json), its
/// built layer gzip-compressed when `gzip` (as the containerd image store keeps layers).
fn oci_export(build: &Build, gzip: bool) -> Vec<u8> {
    let config = builder_config(build);
    let mut app = app_layer(build);
    if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&app).unwrap();
        app = encoder.finish().unwrap();
    }
    let layers = [base_layer(), app];
    let blob = |bytes: &[u8]| format!("blobs/sha256/{}", &sha256(bytes)[7..]);
    let mut out = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, name, bytes).unwrap();
    };
    add(&blob(&config), &config);
    for layer in &layers {
        add(&blob(layer), layer);
    }
    add("index.json", br#"{"schemaVersion":2,"manifests":[]}"#);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": blob(&config),
        "RepoTags": null,
        "Layers": layers.iter().map(|l| blob(l)).collect::<Vec<_>>(),
    }]))
    .unwrap();
    add("manifest.json", &manifest);
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    out.into_inner().unwrap()
}

#[test]
fn legacy_and_oci_layout_exports_give_one_image() {
    let (_a, legacy) = normalized(&Build::default(), Compression::None);
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let image = normalize(
            oci_export(&Build::default(), gzip).as_slice(),
            &base_options(Compression::None),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            image.manifest_digest(),
            legacy.manifest_digest(),
            "gzip: {gzip}"
        );
    }
}

#[test]
fn a_plain_oci_layout_export_is_read_through_its_index() {
    // The layout this module writes is itself an export without manifest.json: normalizing it
    // again gives the same image (normalization is idempotent).
    let (dir, image) = normalized(&Build::default(), Compression::Gzip);
    let mut tar_bytes = tar::Builder::new(Vec::new());
    tar_bytes.append_dir_all(".", dir.path()).unwrap();
    let tar_bytes = tar_bytes.into_inner().unwrap();
    let again_dir = tempfile::tempdir().unwrap();
    let again = normalize(
        tar_bytes.as_slice(),
        &base_options(Compression::Gzip),
        again_dir.path(),
    )
    .unwrap();
    assert_eq!(again.manifest_digest(), image.manifest_digest());
}

#[test]
fn the_docker_archive_is_fixed_and_lists_the_blobs() {
    let (_dir, image) = normalized(&Build::default(), Compression::Gzip);
    let tags = vec!["example/app:1".to_owned()];
    let first = image.write_docker_archive(Vec::new(), &tags).unwrap();
    let second = image.write_docker_archive(Vec::new(), &tags).unwrap();
    assert_eq!(first, second);
    let listed: Vec<(String, u64)> = entries(&first).into_iter().map(|e| (e.0, e.5)).collect();
    let blob = |d: &dyn std::fmt::Display| format!("blobs/sha256/{}", &d.to_string()[7..]);
    let expected = vec![
        ("blobs/".to_owned(), 0),
        ("blobs/sha256/".to_owned(), 0),
        (blob(image.config_digest()), 0),
        (blob(&image.layers()[0].digest), 0),
        (blob(&image.layers()[1].digest), 0),
        (blob(image.manifest_digest()), 0),
        ("index.json".to_owned(), 0),
        ("manifest.json".to_owned(), 0),
        ("oci-layout".to_owned(), 0),
    ];
    assert_eq!(listed, expected);
    let manifest = entries(&first)
        .into_iter()
        .find(|e| e.0 == "manifest.json")
        .unwrap()
        .9;
    assert_eq!(
        String::from_utf8(manifest).unwrap(),
        format!(
            r#"[{{"Config":"{}","Layers":["{}","{}"],"RepoTags":["example/app:1"]}}]"#,
            blob(image.config_digest()),
            blob(&image.layers()[0].digest),
            blob(&image.layers()[1].digest),
        )
    );
}

// ---------------------------------------------------------------- the real engine

mod engine {
    use super::*;
    use bollard::query_parameters::{
        BuildImageOptions, BuilderVersion, CreateContainerOptions, ImportImageOptions, LogsOptions,
        RemoveContainerOptions, RemoveImageOptions, WaitContainerOptions,
    };
    use bollard::Docker;
    use futures_util::StreamExt;

    async fn docker() -> Option<Docker> {
        let host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
        let Some(host) = host else {
            common::skip_or_fail();
            return None;
        };
        let docker = Docker::connect_with_host(&host)
            .unwrap()
            .negotiate_version()
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test engine {host}: {e}"));
        Some(docker)
    }

    fn base_image() -> String {
        std::env::var("COOKBOOK_TEST_BASE_IMAGE")
            .unwrap_or_else(|_| "cookbook-test/busybox:latest".to_owned())
    }

    /// A context tar for the Dockerfile, its COPY source given the wall clock as mtime (as a
    /// checkout would have it).
    fn context() -> Vec<u8> {
        // The RUN step writes under a directory whose path needs a PAX `path` record, so
        // `docker load` and the run below read one.
        let dockerfile = format!(
            "FROM {base}\nRUN mkdir -p /{LONG_DIR} && echo built > /{LONG_DIR}/built.txt\nCOPY greeting.txt /app/\nCMD [\"cat\", \"/app/greeting.txt\", \"/{LONG_DIR}/built.txt\"]\n",
            base = base_image()
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in [
            ("Dockerfile", dockerfile.as_str()),
            ("greeting.txt", "hello\n"),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(now);
            b.append_data(&mut h, name, body.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// Builds the context with the classic builder, without its cache, and returns the image id.
    async fn build(docker: &Docker) -> String {
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            rm: true,
            forcerm: true,
            nocache: true,
            version: BuilderVersion::BuilderV1,
            ..Default::default()
        };
        let body = bollard::body_full(context().into());
        let mut stream = docker.build_image(options, None, Some(body));
        let mut id = None;
        let mut log = String::new();
        while let Some(item) = stream.next().await {
            let info = item.unwrap_or_else(|e| panic!("build failed: {e}\n{log}"));
            log.push_str(info.stream.as_deref().unwrap_or_default());
            if let Some(aux) = info.aux.and_then(|a| a.id) {
                id = Some(aux);
            }
        }
        id.unwrap_or_else(|| panic!("no image id in the build output\n{log}"))
    }

    async fn export(docker: &Docker, id: &str, to: &Path) {
        let mut file = std::fs::File::create(to).unwrap();
        let mut stream = docker.export_image(id);
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.unwrap()).unwrap();
        }
        file.sync_all().unwrap();
    }

    fn file_digest(path: &Path) -> String {
        let mut hasher = Sha256::new();
        std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut hasher).unwrap();
        hex::encode(hasher.finalize())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_builds_normalize_to_one_digest_that_loads_and_runs() {
        let Some(docker) = docker().await else { return };
        let base = docker.inspect_image(&base_image()).await.unwrap();
        let base_diff_ids = base.root_fs.unwrap().layers.unwrap();
        let work = tempfile::tempdir().unwrap();

        let first = build(&docker).await;
        // The classic builder stamps whole seconds: move the clock on.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let second = build(&docker).await;
        assert_ne!(first, second, "the engine gave both builds one id");

        let mut images = Vec::new();
        for (name, id) in [("first", &first), ("second", &second)] {
            let raw = work.path().join(format!("{name}.tar"));
            export(&docker, id, &raw).await;
            let out = work.path().join(name);
            let options = NormalizeOptions {
                base_diff_ids: base_diff_ids.clone(),
                compression: Compression::default(),
            };
            let image = tokio::task::spawn_blocking(move || {
                normalize(std::fs::File::open(&raw).unwrap(), &options, &out).unwrap()
            })
            .await
            .unwrap();
            images.push(image);
        }
        assert_ne!(
            file_digest(&work.path().join("first.tar")),
            file_digest(&work.path().join("second.tar")),
            "the raw exports should differ (created, container, mtimes)"
        );
        assert_eq!(images[0].manifest_digest(), images[1].manifest_digest());
        assert_eq!(diff(&images[0], &images[1], 10).unwrap(), None);
        // Base layer kept, RUN and COPY layers normalized.
        assert_eq!(images[0].layers().len(), base_diff_ids.len() + 2);
        for (layer, base_id) in images[0].layers().iter().zip(&base_diff_ids) {
            assert_eq!(&layer.diff_id.to_string(), base_id);
        }
        // Every entry the build wrote has mtime 0 and no user names; the long path survived.
        let mut paths = Vec::new();
        for index in base_diff_ids.len()..images[0].layers().len() {
            let mut bytes = Vec::new();
            images[0]
                .open_layer(index)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            for entry in entries(&bytes) {
                assert_eq!((entry.5, entry.6.as_str()), (0, ""), "{}", entry.0);
                paths.push(entry.0);
            }
        }
        assert!(
            paths.contains(&format!("{LONG_DIR}/built.txt")),
            "{paths:?}"
        );

        // Load the normalized tar: the engine's image id is the config digest, and it runs.
        let tag = format!("cookbook-test/normalized:{}", std::process::id());
        let archive = images[0]
            .write_docker_archive(Vec::new(), std::slice::from_ref(&tag))
            .unwrap();
        let mut load = docker.import_image(
            ImportImageOptions::default(),
            bollard::body_full(archive.into()),
            None,
        );
        while let Some(item) = load.next().await {
            item.unwrap();
        }
        let loaded = docker.inspect_image(&tag).await.unwrap();
        assert_eq!(loaded.id.unwrap(), images[0].config_digest().to_string());

        let container = docker
            .create_container(
                None::<CreateContainerOptions>,
                bollard::models::ContainerCreateBody {
                    image: Some(tag.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        docker.start_container(&container, None).await.unwrap();
        let mut wait = docker.wait_container(&container, None::<WaitContainerOptions>);
        while let Some(status) = wait.next().await {
            assert_eq!(status.unwrap().status_code, 0);
        }
        let mut logs = docker.logs(
            &container,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let mut output = String::new();
        while let Some(line) = logs.next().await {
            output.push_str(&line.unwrap().to_string());
        }
        assert_eq!(output, "hello\nbuilt\n");

        docker
            .remove_container(
                &container,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
        for image in [tag.as_str(), first.as_str(), second.as_str()] {
            let options = RemoveImageOptions {
                force: true,
                ..Default::default()
            };
            docker
                .remove_image(image, Some(options), None)
                .await
                .unwrap();
        }
    }
}
