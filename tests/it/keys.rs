//! `cookbook key generate` / `key id`, and what `openssl` makes of the keys and the DSSE
//! signatures cookbook writes: the by-hand check docs/SUPPLY-CHAIN.md describes must work.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use cookbook::attest::dsse::{pae, Envelope, IN_TOTO_PAYLOAD_TYPE};
use cookbook::attest::key::{KeyAlgorithm, SigningKey};

use crate::common::{run_in, skip_or_fail};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `openssl ARGS` in `dir`: its stdout, or `None` (test skipped) when there is no openssl.
fn openssl(dir: &Path, args: &[&str]) -> Option<std::process::Output> {
    match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip_or_fail();
            None
        }
        Err(e) => panic!("openssl: {e}"),
    }
}

fn sha256sum_of_spki(dir: &Path, public: &str) -> Option<String> {
    let der = openssl(dir, &["pkey", "-pubin", "-in", public, "-outform", "DER"])?;
    assert!(der.status.success(), "{der:?}");
    use sha2::Digest;
    Some(format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(&der.stdout))
    ))
}

#[test]
fn generate_writes_a_private_key_only_its_owner_reads_and_openssl_reads_both() {
    let dir = tempfile::tempdir().unwrap();
    for (algorithm, prefix) in [("ecdsa-p256", "keys-ec"), ("ed25519", "keys-ed")] {
        let run = run_in(
            dir.path(),
            &[
                "key",
                "generate",
                "--algorithm",
                algorithm,
                "--output",
                prefix,
                "--format",
                "json",
            ],
        );
        run.assert_code(0);
        let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(report["algorithm"], algorithm, "{}", run.context());
        assert_eq!(report["private_key"], format!("{prefix}.key"));
        assert_eq!(report["public_key"], format!("{prefix}.pub"));
        let (private, public) = (format!("{prefix}.key"), format!("{prefix}.pub"));
        assert_eq!(mode(&dir.path().join(&private)), 0o600);
        let key_id = report["key_id"].as_str().unwrap().to_owned();
        // `key id` of either file says the same.
        for file in [&private, &public] {
            let id = run_in(dir.path(), &["key", "id", file]);
            id.assert_code(0);
            assert_eq!(id.stdout.trim(), key_id, "{}", id.context());
        }
        // openssl reads the private key, derives the same public key, and the id is the
        // SHA-256 of the SPKI DER as openssl writes it.
        let Some(derived) = openssl(dir.path(), &["pkey", "-in", &private, "-pubout"]) else {
            return;
        };
        assert!(derived.status.success(), "{derived:?}");
        assert_eq!(
            String::from_utf8(derived.stdout).unwrap(),
            std::fs::read_to_string(dir.path().join(&public)).unwrap()
        );
        assert_eq!(sha256sum_of_spki(dir.path(), &public).unwrap(), key_id);
    }
}

#[test]
fn generate_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), &["key", "generate"]).assert_code(0);
    let key = dir.path().join("cookbook.key");
    let before = std::fs::read(&key).unwrap();
    let again = run_in(dir.path(), &["key", "generate"]);
    again.assert_code(2);
    assert!(
        again
            .stderr
            .contains("cookbook.key and cookbook.pub already exist")
            && again.stderr.contains("--force"),
        "{}",
        again.context()
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);
    // Only the public key there still refuses: the pair is written whole or not at all.
    std::fs::remove_file(&key).unwrap();
    run_in(dir.path(), &["key", "generate"]).assert_code(2);
    assert!(!key.exists());
    // --force replaces a file that others could read with a new one that they cannot.
    std::fs::write(&key, "old").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    run_in(dir.path(), &["key", "generate", "--force"]).assert_code(0);
    assert_eq!(mode(&key), 0o600);
    assert_ne!(std::fs::read(&key).unwrap(), b"old");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
}

#[test]
fn bad_key_files_are_refused_with_exit_2_naming_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str, mode: u32| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("junk.pub", "hello\n", 0o644);
    // openssl genpkey -algorithm ed448
    write(
        "ed448.key",
        "-----BEGIN PRIVATE KEY-----\nMEcCAQAwBQYDK2VxBDsEOQaj1vfO9SSVXKBQLi6qRz8TPgwMMsuMLd4JoM02ottm\ny6IDIpzgu+bXBtcaSnMgQ4Y+PEh/omRWEA==\n-----END PRIVATE KEY-----\n",
        0o600,
    );
    write(
        "open.key",
        &SigningKey::generate(KeyAlgorithm::EcdsaP256).to_pkcs8_pem(),
        0o640,
    );
    let cases = [
        ("junk.pub", "junk.pub: not a PEM file"),
        (
            "ed448.key",
            "ed448.key: the key's algorithm is Ed448 (1.3.101.113), which cookbook does not sign with",
        ),
        ("open.key", "open.key: permissions 0640 are too open"),
        ("none.pub", "none.pub: no such file"),
    ];
    for (file, message) in cases {
        let run = run_in(dir.path(), &["key", "id", file]);
        run.assert_code(2);
        assert!(run.stderr.contains(message), "{}", run.context());
    }
    let run = run_in(dir.path(), &["key", "id", "open.key", "--format", "json"]);
    run.assert_code(2);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["errors"][0]["code"], "key", "{}", run.context());
    assert_eq!(doc["errors"][0]["help"], "chmod 600 open.key");
}

/// What the by-hand check does: the PAE bytes and the signature, verified by openssl with the
/// public key file alone.
#[test]
fn openssl_verifies_envelope_signatures_over_the_pae() {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
        let key = SigningKey::generate(algorithm);
        let payload = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &key).unwrap();
        use base64::Engine as _;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&envelope.signatures[0].sig)
            .unwrap();
        let d = dir.path();
        std::fs::write(d.join("pub.pem"), key.public_key().to_pem()).unwrap();
        std::fs::write(d.join("pae.bin"), pae(&envelope.payload_type, payload)).unwrap();
        std::fs::write(d.join("sig.bin"), &sig).unwrap();
        let args: &[&str] = match algorithm {
            KeyAlgorithm::EcdsaP256 => &[
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig.bin",
                "pae.bin",
            ],
            KeyAlgorithm::Ed25519 => &[
                "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "pae.bin",
                "-sigfile", "sig.bin",
            ],
        };
        let Some(ok) = openssl(d, args) else { return };
        assert!(ok.status.success(), "{algorithm}: {ok:?}");
        // And a flipped byte of the PAE does not verify.
        let mut flipped = pae(&envelope.payload_type, payload);
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(d.join("pae.bin"), flipped).unwrap();
        let bad = openssl(d, args).unwrap();
        assert!(!bad.status.success(), "{algorithm}: {bad:?}");
        assert_eq!(
            sha256sum_of_spki(d, "pub.pem").unwrap(),
            key.public_key().key_id()
        );
    }
}
