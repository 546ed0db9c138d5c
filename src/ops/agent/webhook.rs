//! `POST /hooks/git`: a git host's push notification, authenticated, then parsed.
//!
//! Pure: the agent's server hands in the request's headers and its body (read up to
//! [`MAX_BODY`]) and gets a [`Delivery`] or why it was [`Rejected`]; nothing here starts a round.
//! The only I/O is [`Secret::read`], once at start.
//!
//! Invariants:
//! - Nothing is parsed before the request is authenticated (as Flux's receivers do): GitHub's
//!   `X-Hub-Signature-256` is an HMAC-SHA256 of the raw body, checked with hmac's constant-time
//!   `verify_slice`; GitLab's `X-Gitlab-Token` is the secret itself, compared in constant time.
//!   GitHub's older `X-Hub-Signature` (HMAC-SHA1) alone is refused.
//! - What the body says is capped and typed at this boundary: only `ref` and `after` are read,
//!   through serde (its recursion limit holds against hostile nesting); a `ref` or `after` that
//!   is not a short string of the expected shape is a 400, never a panic.
//! - A rejection names the header at fault, never the secret.
//! - Replays ([`Replays`]) are keyed by the provider, the delivery id *and* the body's digest.
//!   GitLab documents `X-Gitlab-Event-UUID` as shared by "recursive" hooks (triggered by an
//!   earlier hook), so the id alone could merge two different pushes; a redelivery (GitHub's,
//!   GitLab's retries, which keep `Idempotency-Key`) and a captured request repeat id and body
//!   alike. GitLab's id is its `Idempotency-Key` (GitLab 17.4 on: the same across retries),
//!   else `X-Gitlab-Event-UUID`, else `X-Gitlab-Webhook-UUID`.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use axum::http::header::{HeaderMap, HeaderValue};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::context::file::{read_regular, FileError};

/// The largest webhook body read (GitHub caps push payloads at 25 MB, but a push event of a
/// cookbook repository is a few KiB): larger is 413 and starts nothing.
pub const MAX_BODY: usize = 1024 * 1024;

/// A secret file is a line of text; 4 KiB leaves room for any generated secret.
const MAX_SECRET_FILE: u64 = 4096;

/// The longest delivery id or event name kept: both end up in the event log. GitHub's and
/// GitLab's are UUIDs and short names.
const MAX_HEADER_FIELD: usize = 200;

/// The longest `ref` kept (git has no hard limit; a branch name past this is not one we follow).
const MAX_REF: usize = 1024;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    GitHub,
    GitLab,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shared webhook secret: GitHub's HMAC key, GitLab's token. Zeroed when dropped, never
/// printed (its `Debug` says only that it is one).
pub struct Secret(Zeroizing<Vec<u8>>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why the webhook secret could not be had: the agent does not start (exit 2, `error.rs`).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{}: no such file", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: FileError },
    /// A secret its group or others may read, refused as a private key is (`attest::key`).
    #[error("{}: permissions {mode:04o} are too open: a webhook secret must be readable by its owner only", path.display())]
    TooOpen { path: PathBuf, mode: u32 },
    /// An empty secret would make every signature computable by anyone.
    #[error("{}: the webhook secret is empty", path.display())]
    EmptyFile { path: PathBuf },
    #[error("the webhook secret is empty")]
    Empty,
}

impl WebhookError {
    /// What to do about it, where there is one thing to do.
    pub fn help(&self) -> Option<String> {
        match self {
            WebhookError::TooOpen { path, .. } => Some(format!("chmod 600 {}", path.display())),
            WebhookError::EmptyFile { .. } | WebhookError::Empty => {
                Some("generate one, e.g. `openssl rand -hex 32`".to_owned())
            }
            _ => None,
        }
    }
}

/// How the agent's start fails on its secret. Here and not in `error.rs`, which maps the edges
/// and may not import `ops` (no import cycle): a file the system would not read keeps its I/O
/// error (exit 1 or 2 by its kind, as for any input file); the rest is the command as given not
/// working (exit 2), with its help line.
impl From<WebhookError> for crate::error::Error {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Read {
                path,
                source: FileError::Io(source),
            } => crate::error::Error::Read { path, source },
            e => crate::error::Error::Usage {
                message: e.to_string(),
                help: e.help(),
            },
        }
    }
}

impl Secret {
    /// Reads a secret file: regular file, capped (4 KiB), trailing newline trimmed, not empty;
    /// refused when others may read it (mode & 0o077 != 0), as `attest::key` refuses a private
    /// key others may read.
    pub fn read(path: &Path) -> Result<Secret, WebhookError> {
        use std::os::unix::fs::PermissionsExt;
        let mut bytes = match read_regular(path, MAX_SECRET_FILE) {
            Ok(Some(bytes)) => Zeroizing::new(bytes),
            Ok(None) => return Err(WebhookError::Missing { path: path.into() }),
            Err(source) => {
                return Err(WebhookError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        // Checked after the read, on the file read (a link's target), as `attest::key` does.
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(WebhookError::TooOpen {
                    path: path.into(),
                    mode,
                });
            }
        }
        let kept = trimmed_len(&bytes);
        bytes.truncate(kept);
        Secret::from_bytes_zeroizing(bytes)
            .map_err(|_| WebhookError::EmptyFile { path: path.into() })
    }

    /// The secret as given (an environment variable's value): used as is, empty refused.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Secret, WebhookError> {
        Secret::from_bytes_zeroizing(Zeroizing::new(bytes))
    }

    fn from_bytes_zeroizing(bytes: Zeroizing<Vec<u8>>) -> Result<Secret, WebhookError> {
        if bytes.is_empty() {
            return Err(WebhookError::Empty);
        }
        Ok(Secret(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length: this cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

/// The length of `bytes` without its trailing line ending(s): an editor's or `echo`'s newline is
/// not part of the secret the git host was given.
fn trimmed_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|b| *b != b'\n' && *b != b'\r')
        .map_or(0, |i| i + 1)
}

/// An authenticated delivery, its body parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub provider: Provider,
    /// X-GitHub-Delivery / GitLab's Idempotency-Key, X-Gitlab-Event-UUID or
    /// X-Gitlab-Webhook-UUID (the first present); None when absent.
    pub id: Option<String>,
    /// X-GitHub-Event / X-Gitlab-Event (e.g. "push", "Push Hook", "ping").
    pub event: String,
    /// The push's `ref` (refs/heads/main) and `after` commit, when it is a push.
    pub git_ref: Option<String>,
    pub after: Option<String>,
    /// sha256 of the body, hex: the replay key when there is no id.
    pub body_digest: String,
}

/// Why a delivery starts nothing; each variant is one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// 401: no signature/token, a malformed one, or a wrong one. Says which, never the secret.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 400: authenticated but not a push/ping event we understand, or a body that is not JSON.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 413.
    #[error("the body is larger than {} KiB", MAX_BODY >> 10)]
    TooLarge,
}

impl Rejected {
    /// The HTTP status the server answers with.
    pub fn status(&self) -> u16 {
        match self {
            Rejected::Unauthorized(_) => 401,
            Rejected::BadRequest(_) => 400,
            Rejected::TooLarge => 413,
        }
    }
}

// Written as the hosts' documentation writes them, for messages; `HeaderMap` looks names up
// case-insensitively.
const GITHUB_SIGNATURE: &str = "X-Hub-Signature-256";
const GITHUB_SHA1_SIGNATURE: &str = "X-Hub-Signature";
const GITHUB_EVENT: &str = "X-GitHub-Event";
const GITHUB_DELIVERY: &str = "X-GitHub-Delivery";
const GITLAB_TOKEN: &str = "X-Gitlab-Token";
const GITLAB_EVENT: &str = "X-Gitlab-Event";
const GITLAB_IDEMPOTENCY_KEY: &str = "Idempotency-Key";
const GITLAB_EVENT_UUID: &str = "X-Gitlab-Event-UUID";
const GITLAB_WEBHOOK_UUID: &str = "X-Gitlab-Webhook-UUID";

/// Authenticates FIRST (GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw
/// body, checked in constant time with hmac's `verify_slice`; GitLab: `X-Gitlab-Token` equal to
/// the secret, compared in constant time), then parses the body (capped, only the fields needed,
/// through serde with no panics on hostile JSON). Which provider: the header present; both or
/// neither → Unauthorized.
pub fn check(headers: &HeaderMap, body: &[u8], secret: &Secret) -> Result<Delivery, Rejected> {
    if body.len() > MAX_BODY {
        return Err(Rejected::TooLarge);
    }
    let signature = single(headers, GITHUB_SIGNATURE)?;
    let token = single(headers, GITLAB_TOKEN)?;
    let provider = match (signature, token) {
        (Some(signature), None) => {
            verify_github(signature, body, secret)?;
            Provider::GitHub
        }
        (None, Some(token)) => {
            verify_gitlab(token, secret)?;
            Provider::GitLab
        }
        (Some(_), Some(_)) => {
            return Err(Rejected::Unauthorized(
                "both X-Hub-Signature-256 and X-Gitlab-Token: a delivery comes from one host"
                    .to_owned(),
            ))
        }
        (None, None) if headers.contains_key(GITHUB_SHA1_SIGNATURE) => {
            return Err(Rejected::Unauthorized(
                "only X-Hub-Signature (HMAC-SHA1): cookbook checks X-Hub-Signature-256".to_owned(),
            ))
        }
        (None, None) => {
            return Err(Rejected::Unauthorized(
                "no X-Hub-Signature-256 (GitHub) or X-Gitlab-Token (GitLab) header".to_owned(),
            ))
        }
    };
    parse(provider, headers, body)
}

/// Which host a request says it comes from, for the deliveries metric's `provider` label,
/// before (and whether or not) it is authenticated: `github`, `gitlab` or `unknown`.
pub fn provider_label(headers: &HeaderMap) -> &'static str {
    let github = [GITHUB_SIGNATURE, GITHUB_SHA1_SIGNATURE, GITHUB_EVENT];
    let gitlab = [GITLAB_TOKEN, GITLAB_EVENT];
    match (
        github.iter().any(|h| headers.contains_key(*h)),
        gitlab.iter().any(|h| headers.contains_key(*h)),
    ) {
        (true, false) => Provider::GitHub.as_str(),
        (false, true) => Provider::GitLab.as_str(),
        _ => "unknown",
    }
}

/// The one value of header `name`, if any; a header given twice is not one we can trust.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a HeaderValue>, Rejected> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Rejected::Unauthorized(format!(
            "{name} given more than once"
        )));
    }
    Ok(first)
}

fn verify_github(signature: &HeaderValue, body: &[u8], secret: &Secret) -> Result<(), Rejected> {
    let malformed =
        |why: &str| Rejected::Unauthorized(format!("malformed X-Hub-Signature-256: {why}"));
    let hex_digits = signature
        .as_bytes()
        .strip_prefix(b"sha256=")
        .ok_or_else(|| malformed("it does not start with `sha256=`"))?;
    let expected = hex::decode(hex_digits).map_err(|_| malformed("not hexadecimal"))?;
    if expected.len() != 32 {
        return Err(malformed("not 64 hexadecimal digits"));
    }
    let mut mac = secret.mac();
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| {
        Rejected::Unauthorized(
            "X-Hub-Signature-256 does not match the body (another secret, or a changed body)"
                .to_owned(),
        )
    })
}

fn verify_gitlab(token: &HeaderValue, secret: &Secret) -> Result<(), Rejected> {
    // A constant-time comparison of two strings of any length, with the crates at hand: the
    // HMACs (keyed by the secret) of the token and of the secret are compared by `verify_slice`,
    // so neither the bytes nor the length of the secret show in the time taken.
    let mut expected = secret.mac();
    expected.update(&secret.0);
    let expected = expected.finalize().into_bytes();
    let mut given = secret.mac();
    given.update(token.as_bytes());
    given
        .verify_slice(&expected)
        .map_err(|_| Rejected::Unauthorized("X-Gitlab-Token is not the secret".to_owned()))
}

/// What is read of a push's body: every other field is skipped.
#[derive(Deserialize)]
struct PushBody {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    after: Option<String>,
}

/// Whether an event carries a push's `ref` and `after` (GitLab's tag pushes do too).
fn is_push(provider: Provider, event: &str) -> bool {
    match provider {
        Provider::GitHub => event == "push",
        Provider::GitLab => event == "Push Hook" || event == "Tag Push Hook",
    }
}

fn parse(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, Rejected> {
    let (event_header, id_headers): (&str, &[&str]) = match provider {
        Provider::GitHub => (GITHUB_EVENT, &[GITHUB_DELIVERY]),
        Provider::GitLab => (
            GITLAB_EVENT,
            &[
                GITLAB_IDEMPOTENCY_KEY,
                GITLAB_EVENT_UUID,
                GITLAB_WEBHOOK_UUID,
            ],
        ),
    };
    let event = header_text(headers, event_header)?
        .ok_or_else(|| Rejected::BadRequest(format!("no {event_header} header")))?;
    let mut id = None;
    for name in id_headers {
        if let Some(value) = header_text(headers, name)? {
            id = Some(value);
            break;
        }
    }
    // Every delivery's body is a JSON object, whatever the event: anything else is not from a
    // git host.
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Rejected::BadRequest(format!("the body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(Rejected::BadRequest(
            "the body is not a JSON object".to_owned(),
        ));
    }
    let (git_ref, after) = if is_push(provider, &event) {
        let push: PushBody = serde_json::from_value(value)
            .map_err(|e| Rejected::BadRequest(format!("a {event} event's body: {e}")))?;
        let git_ref = push
            .git_ref
            .filter(|r| {
                r.starts_with("refs/") && r.len() <= MAX_REF && !r.chars().any(char::is_control)
            })
            .ok_or_else(|| {
                Rejected::BadRequest(format!(
                    "a {event} event without a `ref` like refs/heads/NAME"
                ))
            })?;
        let after = push.after.filter(|a| is_object_name(a)).ok_or_else(|| {
            Rejected::BadRequest(format!(
                "a {event} event without an `after` commit (40 or 64 hexadecimal digits)"
            ))
        })?;
        (Some(git_ref), Some(after))
    } else {
        (None, None)
    };
    Ok(Delivery {
        provider,
        id,
        event,
        git_ref,
        after,
        body_digest: hex::encode(Sha256::digest(body)),
    })
}

/// A git object name: SHA-1 (40) or SHA-256 (64) hexadecimal digits.
fn is_object_name(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Header `name` as short, printable text; `None` when absent or empty.
fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, Rejected> {
    let Some(value) = single(headers, name).map_err(|e| match e {
        Rejected::Unauthorized(why) => Rejected::BadRequest(why),
        other => other,
    })?
    else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| t.len() <= MAX_HEADER_FIELD && !t.contains('\t'))
        .ok_or_else(|| {
            Rejected::BadRequest(format!(
                "{name} is not printable text of at most {MAX_HEADER_FIELD} characters"
            ))
        })?;
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// What the agent does with an authenticated delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A push to the followed branch: start a round.
    Start,
    /// GitHub's `ping`, sent when a webhook is created: answer, start nothing.
    Ping,
    /// Anything else, and why.
    Ignored(String),
}

impl Delivery {
    /// A push to `refs/heads/<branch>` → Start; GitHub's `ping` → Ping; any other event or
    /// branch (or a tag push, a branch deletion with `after` all zeros) → Ignored(why).
    pub fn verdict(&self, branch: &str) -> Verdict {
        if self.provider == Provider::GitHub && self.event == "ping" {
            return Verdict::Ping;
        }
        let (Some(git_ref), Some(after)) = (&self.git_ref, &self.after) else {
            return Verdict::Ignored(format!("a `{}` event, not a push", self.event));
        };
        if after.bytes().all(|b| b == b'0') {
            return Verdict::Ignored(format!("{git_ref} was deleted"));
        }
        if git_ref.starts_with("refs/tags/") {
            return Verdict::Ignored(format!("a tag push ({git_ref})"));
        }
        match git_ref.strip_prefix("refs/heads/") {
            Some(pushed) if pushed == branch => Verdict::Start,
            _ => Verdict::Ignored(format!(
                "a push to {git_ref}, not to the followed refs/heads/{branch}"
            )),
        }
    }
}

/// A delivery's identity for replays: see the module header for why the body's digest is in it.
type ReplayKey = (Provider, Option<String>, String);

/// Deliveries already seen, bounded (oldest forgotten first): a redelivery or a captured and
/// replayed request starts nothing. Keyed by provider + id + body digest (the digest alone when
/// there is no id).
#[derive(Debug)]
pub struct Replays {
    capacity: usize,
    order: VecDeque<ReplayKey>,
    seen: HashSet<ReplayKey>,
}

impl Replays {
    /// At least one delivery is remembered, whatever `capacity` says.
    pub fn new(capacity: usize) -> Replays {
        let capacity = capacity.max(1);
        Replays {
            capacity,
            order: VecDeque::with_capacity(capacity),
            seen: HashSet::with_capacity(capacity),
        }
    }

    /// True the first time a delivery is seen; false for a replay.
    pub fn first_time(&mut self, delivery: &Delivery) -> bool {
        let key = (
            delivery.provider,
            delivery.id.clone(),
            delivery.body_digest.clone(),
        );
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const MAIN: &str = "0123456789abcdef0123456789abcdef01234567";
    const ZEROS: &str = "0000000000000000000000000000000000000000";

    fn secret(s: &str) -> Secret {
        Secret::from_bytes(s.as_bytes().to_vec()).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn push_body(git_ref: &str, after: &str) -> Vec<u8> {
        serde_json::json!({
            "ref": git_ref,
            "before": MAIN,
            "after": after,
            "repository": {"full_name": "acme/site", "nested": [[[{"x": 1}]]]},
        })
        .to_string()
        .into_bytes()
    }

    fn github_push(git_ref: &str, after: &str, id: &str) -> (HeaderMap, Vec<u8>) {
        let body = push_body(git_ref, after);
        let h = headers(&[
            ("x-hub-signature-256", &sign("s3cret", &body)),
            ("x-github-event", "push"),
            ("x-github-delivery", id),
        ]);
        (h, body)
    }

    fn unauthorized(r: Result<Delivery, Rejected>, says: &str) {
        match r {
            Err(Rejected::Unauthorized(why)) => {
                assert!(why.contains(says), "{why:?} does not say {says:?}");
                assert!(!why.contains("s3cret"), "{why:?} leaks the secret");
            }
            other => panic!("not Unauthorized({says:?}): {other:?}"),
        }
    }

    /// The test vector of GitHub's "Validating webhook deliveries" page.
    #[test]
    fn githubs_documented_vector_verifies() {
        let secret = secret("It's a Secret to Everybody");
        let signature = HeaderValue::from_static(
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        );
        verify_github(&signature, b"Hello, World!", &secret).unwrap();
        assert!(verify_github(&signature, b"Hello, World?", &secret).is_err());
        assert!(verify_github(&signature, b"Hello, World!", &self::secret("another")).is_err());
    }

    #[test]
    fn a_signed_github_push_is_a_delivery() {
        let (h, body) = github_push(
            "refs/heads/main",
            MAIN,
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        );
        let d = check(&h, &body, &secret("s3cret")).unwrap();
        assert_eq!(d.provider, Provider::GitHub);
        assert_eq!(
            d.id.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        assert_eq!(d.event, "push");
        assert_eq!(d.git_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!(d.after.as_deref(), Some(MAIN));
        assert_eq!(d.body_digest, hex::encode(Sha256::digest(&body)));
        assert_eq!(d.verdict("main"), Verdict::Start);
        assert_eq!(d.provider.to_string(), "github");
    }

    #[test]
    fn a_wrong_missing_or_malformed_signature_is_unauthorized() {
        let s = secret("s3cret");
        let (mut h, body) = github_push("refs/heads/main", MAIN, "1");
        h.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&sign("other", &body)).unwrap(),
        );
        unauthorized(check(&h, &body, &s), "does not match the body");

        // The body changed after signing.
        let (h, mut body) = github_push("refs/heads/main", MAIN, "1");
        body.push(b' ');
        unauthorized(check(&h, &body, &s), "does not match the body");

        let (mut h, body) = github_push("refs/heads/main", MAIN, "1");
        h.remove("x-hub-signature-256");
        unauthorized(check(&h, &body, &s), "no X-Hub-Signature-256");

        // GitHub's older header, alone: we need the SHA-256 one.
        h.insert("x-hub-signature", HeaderValue::from_static("sha1=0123"));
        unauthorized(check(&h, &body, &s), "HMAC-SHA1");

        for (bad, says) in [
            (
                "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                "sha256=",
            ),
            ("sha1=757107ea0eb2509fc211221cce984b8a37570b6d", "sha256="),
            (
                "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                "not hexadecimal",
            ),
            ("sha256=757107ea0eb2509fc211221cce984b8a", "64 hexadecimal"),
            ("sha256=", "64 hexadecimal"),
        ] {
            h.remove("x-hub-signature");
            h.insert("x-hub-signature-256", HeaderValue::from_static(bad));
            unauthorized(check(&h, &body, &s), says);
        }

        // Twice: which one would count?
        let (mut h, body) = github_push("refs/heads/main", MAIN, "1");
        h.append(
            "x-hub-signature-256",
            HeaderValue::from_str(&sign("s3cret", &body)).unwrap(),
        );
        unauthorized(check(&h, &body, &s), "more than once");
    }

    #[test]
    fn gitlabs_token_is_compared_with_the_secret() {
        let body = push_body("refs/heads/main", MAIN);
        let h = headers(&[
            ("x-gitlab-token", "s3cret"),
            ("x-gitlab-event", "Push Hook"),
            (
                "x-gitlab-event-uuid",
                "9d1b6e4c-0d4a-4b8e-8c1e-6f1f3c2a1b00",
            ),
            (
                "x-gitlab-webhook-uuid",
                "11111111-0d4a-4b8e-8c1e-6f1f3c2a1b00",
            ),
        ]);
        let d = check(&h, &body, &secret("s3cret")).unwrap();
        assert_eq!(d.provider, Provider::GitLab);
        assert_eq!(
            d.id.as_deref(),
            Some("9d1b6e4c-0d4a-4b8e-8c1e-6f1f3c2a1b00")
        );
        assert_eq!(d.verdict("main"), Verdict::Start);
        assert_eq!(d.provider.to_string(), "gitlab");

        // GitLab 17.4's Idempotency-Key, the same across retries, comes first.
        let mut h2 = h.clone();
        h2.insert("idempotency-key", HeaderValue::from_static("f5e5f430-f57b"));
        let d = check(&h2, &body, &secret("s3cret")).unwrap();
        assert_eq!(d.id.as_deref(), Some("f5e5f430-f57b"));
        // Without the event UUID, the webhook UUID names the delivery.
        let mut h2 = h.clone();
        h2.remove("x-gitlab-event-uuid");
        let d = check(&h2, &body, &secret("s3cret")).unwrap();
        assert_eq!(
            d.id.as_deref(),
            Some("11111111-0d4a-4b8e-8c1e-6f1f3c2a1b00")
        );

        for wrong in [&b"s3cre"[..], b"s3cret ", b"S3CRET", b"s3cret\xff"] {
            let mut h = h.clone();
            h.insert("x-gitlab-token", HeaderValue::from_bytes(wrong).unwrap());
            unauthorized(check(&h, &body, &secret("s3cret")), "not the secret");
        }
    }

    #[test]
    fn both_providers_headers_are_unauthorized() {
        let (mut h, body) = github_push("refs/heads/main", MAIN, "1");
        h.insert("x-gitlab-token", HeaderValue::from_static("s3cret"));
        unauthorized(check(&h, &body, &secret("s3cret")), "both");
    }

    #[test]
    fn an_oversized_body_is_refused_before_anything() {
        let body = vec![b' '; MAX_BODY + 1];
        assert_eq!(
            check(&HeaderMap::new(), &body, &secret("s3cret")),
            Err(Rejected::TooLarge)
        );
        assert_eq!(Rejected::TooLarge.status(), 413);
    }

    #[test]
    fn an_authenticated_body_that_is_not_a_push_we_read_is_a_bad_request() {
        let s = secret("s3cret");
        let bad_request = |body: &[u8], event: &str| {
            let h = headers(&[
                ("x-hub-signature-256", &sign("s3cret", body)),
                ("x-github-event", event),
            ]);
            match check(&h, body, &s) {
                Err(e @ Rejected::BadRequest(_)) => assert_eq!(e.status(), 400),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
            }
        };
        bad_request(b"not json", "push");
        bad_request(b"[1, 2]", "push");
        bad_request(b"\"refs/heads/main\"", "ping");
        bad_request(br#"{"ref": 7, "after": "x"}"#, "push");
        bad_request(
            br#"{"after": "0123456789abcdef0123456789abcdef01234567"}"#,
            "push",
        );
        bad_request(
            br#"{"ref": "main", "after": "0123456789abcdef0123456789abcdef01234567"}"#,
            "push",
        );
        bad_request(br#"{"ref": "refs/heads/main", "after": "HEAD"}"#, "push");
        bad_request(br#"{"ref": "refs/heads/main"}"#, "push");
        // Hostile nesting: serde's recursion limit, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        bad_request(format!(r#"{{"ref": {deep}}}"#).as_bytes(), "push");
        bad_request(deep.as_bytes(), "ping");

        // No event header.
        let body = push_body("refs/heads/main", MAIN);
        let h = headers(&[("x-hub-signature-256", &sign("s3cret", &body))]);
        assert!(
            matches!(check(&h, &body, &s), Err(Rejected::BadRequest(why)) if why.contains("X-GitHub-Event"))
        );
        // An id too long to keep.
        let (mut h, body) = github_push("refs/heads/main", MAIN, "1");
        h.insert(
            "x-github-delivery",
            HeaderValue::from_str(&"a".repeat(201)).unwrap(),
        );
        assert!(matches!(check(&h, &body, &s), Err(Rejected::BadRequest(_))));
    }

    #[test]
    fn verdicts_follow_the_branch_the_event_and_deletions() {
        let s = secret("s3cret");
        let verdict = |git_ref: &str, after: &str| {
            let (h, body) = github_push(git_ref, after, "1");
            check(&h, &body, &s).unwrap().verdict("main")
        };
        assert_eq!(verdict("refs/heads/main", MAIN), Verdict::Start);
        assert!(
            matches!(verdict("refs/heads/mainline", MAIN), Verdict::Ignored(why) if why.contains("refs/heads/mainline"))
        );
        assert!(matches!(
            verdict("refs/heads/feature/main", MAIN),
            Verdict::Ignored(_)
        ));
        assert!(
            matches!(verdict("refs/tags/main", MAIN), Verdict::Ignored(why) if why.contains("tag"))
        );
        assert!(
            matches!(verdict("refs/heads/main", ZEROS), Verdict::Ignored(why) if why.contains("deleted"))
        );

        let ping = headers(&[
            (
                "x-hub-signature-256",
                &sign("s3cret", br#"{"zen": "Keep it simple."}"#),
            ),
            ("x-github-event", "ping"),
        ]);
        let d = check(&ping, br#"{"zen": "Keep it simple."}"#, &s).unwrap();
        assert_eq!(d.verdict("main"), Verdict::Ping);
        assert_eq!(d.id, None);

        // Another event, though its body has a ref: not read, not started.
        let body = push_body("refs/heads/main", MAIN);
        let h = headers(&[
            ("x-hub-signature-256", &sign("s3cret", &body)),
            ("x-github-event", "create"),
        ]);
        let d = check(&h, &body, &s).unwrap();
        assert_eq!(d.git_ref, None);
        assert!(matches!(d.verdict("main"), Verdict::Ignored(why) if why.contains("create")));

        // GitLab's tag pushes carry a ref too.
        let body = push_body("refs/tags/v1", MAIN);
        let h = headers(&[
            ("x-gitlab-token", "s3cret"),
            ("x-gitlab-event", "Tag Push Hook"),
        ]);
        let d = check(&h, &body, &s).unwrap();
        assert!(matches!(d.verdict("main"), Verdict::Ignored(why) if why.contains("tag")));
    }

    fn delivery(id: Option<&str>, body: &str) -> Delivery {
        Delivery {
            provider: Provider::GitHub,
            id: id.map(str::to_owned),
            event: "push".to_owned(),
            git_ref: Some("refs/heads/main".to_owned()),
            after: Some(MAIN.to_owned()),
            body_digest: hex::encode(Sha256::digest(body)),
        }
    }

    #[test]
    fn a_replay_by_id_or_by_body_is_seen() {
        let mut replays = Replays::new(8);
        assert!(replays.first_time(&delivery(Some("a"), "1")));
        assert!(!replays.first_time(&delivery(Some("a"), "1")));
        // Another delivery of another push.
        assert!(replays.first_time(&delivery(Some("b"), "2")));
        // No id: the body is the key.
        assert!(replays.first_time(&delivery(None, "3")));
        assert!(!replays.first_time(&delivery(None, "3")));
        // The same body from the other host is another delivery.
        let mut gitlab = delivery(None, "3");
        gitlab.provider = Provider::GitLab;
        assert!(replays.first_time(&gitlab));
        // GitLab's shared event UUID over two pushes does not merge them.
        let mut first = delivery(Some("shared"), "4");
        first.provider = Provider::GitLab;
        let mut second = delivery(Some("shared"), "5");
        second.provider = Provider::GitLab;
        assert!(replays.first_time(&first));
        assert!(replays.first_time(&second));
    }

    #[test]
    fn the_oldest_delivery_is_forgotten_first() {
        let mut replays = Replays::new(2);
        assert!(replays.first_time(&delivery(Some("a"), "1")));
        assert!(replays.first_time(&delivery(Some("b"), "1")));
        assert!(!replays.first_time(&delivery(Some("a"), "1")));
        assert!(replays.first_time(&delivery(Some("c"), "1")));
        // "a" was the oldest: forgotten; "b" and "c" are still known.
        assert!(!replays.first_time(&delivery(Some("c"), "1")));
        assert!(!replays.first_time(&delivery(Some("b"), "1")));
        assert!(replays.first_time(&delivery(Some("a"), "1")));
        assert_eq!(replays.order.len(), 2);
        assert_eq!(replays.seen.len(), 2);
    }

    #[test]
    fn a_secret_file_is_read_trimmed_and_only_when_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\r\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = Secret::read(&path).unwrap();
        assert_eq!(&s.0[..], b"s3cret");
        assert_eq!(format!("{s:?}"), "Secret(..)");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Secret::read(&path).unwrap_err();
        assert!(
            matches!(e, WebhookError::TooOpen { mode: 0o644, .. }),
            "{e:?}"
        );
        assert_eq!(e.help().unwrap(), format!("chmod 600 {}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            Secret::read(&path),
            Err(WebhookError::TooOpen { .. })
        ));

        std::fs::write(&path, "\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Secret::read(&path),
            Err(WebhookError::EmptyFile { .. })
        ));

        std::fs::write(&path, vec![b'a'; 4097]).unwrap();
        assert!(matches!(
            Secret::read(&path),
            Err(WebhookError::Read {
                source: FileError::TooLarge { .. },
                ..
            })
        ));
        assert!(matches!(
            Secret::read(&dir.path().join("none")),
            Err(WebhookError::Missing { .. })
        ));
        assert!(matches!(
            Secret::read(dir.path()),
            Err(WebhookError::Read {
                source: FileError::NotRegular,
                ..
            })
        ));
    }

    #[test]
    fn a_secret_at_fault_is_exit_2_and_a_failing_system_is_not() {
        use crate::error::{Error, EXIT_FAILED, EXIT_INVALID};
        let too_open = WebhookError::TooOpen {
            path: "hook.secret".into(),
            mode: 0o644,
        };
        match Error::from(too_open) {
            e @ Error::Usage { .. } => {
                assert_eq!(e.exit_code(), EXIT_INVALID);
                assert!(
                    matches!(&e, Error::Usage { help: Some(h), .. } if h == "chmod 600 hook.secret")
                );
            }
            other => panic!("{other:?}"),
        }
        for e in [
            WebhookError::Empty,
            WebhookError::Missing {
                path: "hook.secret".into(),
            },
            WebhookError::Read {
                path: "hook.secret".into(),
                source: FileError::NotRegular,
            },
        ] {
            assert_eq!(Error::from(e).exit_code(), EXIT_INVALID);
        }
        let denied = WebhookError::Read {
            path: "hook.secret".into(),
            source: FileError::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        };
        assert_eq!(Error::from(denied).exit_code(), EXIT_FAILED);
    }

    proptest::proptest! {
        /// Whatever an authenticated sender puts in the body and the headers we read, the
        /// answer is a delivery or a rejection, never a panic.
        #[test]
        fn hostile_authenticated_input_never_panics(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            json_ref in "[ -~]{0,80}",
            after in "[0-9a-fA-Fz]{0,70}",
            event in proptest::sample::select(vec!["push", "ping", "create", "Push Hook", "Tag Push Hook"]),
            id in "[ -~]{0,250}",
            gitlab in proptest::prelude::any::<bool>(),
        ) {
            let s = secret("s3cret");
            let shaped = serde_json::json!({"ref": json_ref, "after": after}).to_string().into_bytes();
            for body in [body, shaped] {
                let mut h = if gitlab {
                    headers(&[("x-gitlab-token", "s3cret"), ("x-gitlab-event", event)])
                } else {
                    headers(&[("x-hub-signature-256", &sign("s3cret", &body)), ("x-github-event", event)])
                };
                h.insert("x-github-delivery", HeaderValue::from_str(&id).unwrap());
                h.insert("x-gitlab-event-uuid", HeaderValue::from_str(&id).unwrap());
                if let Ok(d) = check(&h, &body, &s) {
                    let _ = d.verdict("main");
                    proptest::prop_assert!(d.id.as_ref().is_none_or(|i| i.len() <= MAX_HEADER_FIELD));
                }
            }
        }
    }

    #[test]
    fn an_empty_secret_is_refused() {
        assert!(matches!(
            Secret::from_bytes(Vec::new()),
            Err(WebhookError::Empty)
        ));
        assert!(Secret::from_bytes(b"x".to_vec()).is_ok());
    }
}
