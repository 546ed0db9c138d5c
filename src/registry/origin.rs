//! Where a registry's credentials may go: the one rule, for every URL the client sends to.
//!
//! A credential (a Basic user name and password, a bearer token, an identity token) is bound to
//! the registry's origin — its scheme, host and port, as RFC 6454 defines an origin — because
//! that is what the user configured it for (`docker login <host>`). A registry hands URLs back:
//! an upload's `Location` (then PATCH/PUT/DELETE), a tag list's `Link: <…>; rel="next"`, a
//! redirect to its storage (blob GETs commonly go to a presigned S3 or CDN URL), a token
//! `realm`. [`Origin::admit`] says what each may receive:
//! - the registry's own origin: the request with its credentials;
//! - anywhere else over HTTP(S): the request without them (storage behind a presigned URL needs
//!   none, and a stranger must get none);
//! - HTTPS handed over to plain HTTP, or any other scheme: refused — whatever follows would
//!   travel unprotected although the registry itself is spoken to over TLS.
//!
//! A token realm ([`Origin::admit_realm`]) is another host by design (Docker Hub's registry
//! sends to `auth.docker.io`), so it receives credentials when it is HTTPS; over plain HTTP only
//! when the registry itself is spoken to over plain HTTP (a loopback or configured-insecure
//! registry) and the realm is on the same host.
//!
//! URLs in messages go through [`redact`]: no user info, and query values (a presigned URL's
//! signature, an upload's state token) replaced by `…`, except the few this client writes itself
//! from a digest or a repository name.
//!
//! Pure: no I/O; the client (`super::client`) and reqwest's redirect policy call it.

use reqwest::Url;

/// The scheme, host and port of a URL: what a credential is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    https: bool,
    host: String,
    port: u16,
}

/// What a URL may receive from a client holding credentials for an [`Origin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The registry's own origin (or an HTTPS token realm): send the credentials.
    WithCredentials,
    /// Somewhere else: send the request without any credential, and answer no challenge.
    WithoutCredentials,
    /// Do not send anything there; the reason completes "… the URL …".
    Refused(&'static str),
}

impl Origin {
    /// The origin of `url`; `None` for a scheme other than `http`/`https` or a URL without a
    /// host.
    pub fn of(url: &Url) -> Option<Origin> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        Some(Origin {
            https,
            host: url.host_str()?.to_owned(),
            port: url.port_or_known_default()?,
        })
    }

    /// What `url`, handed back by the registry at this origin (a `Location`, a `Link`, a
    /// redirect), may receive.
    pub fn admit(&self, url: &Url) -> Admission {
        let Some(other) = Origin::of(url) else {
            return Admission::Refused("is not an http or https URL");
        };
        if self.https && !other.https {
            return Admission::Refused("would downgrade HTTPS to plain HTTP");
        }
        if other == *self {
            Admission::WithCredentials
        } else {
            Admission::WithoutCredentials
        }
    }

    /// What the token realm `realm`, named by a challenge of the registry at this origin, may
    /// receive: credentials over HTTPS; over plain HTTP only from a plain-HTTP registry on the
    /// same host (a loopback or configured-insecure one, whose own requests are plain already).
    pub fn admit_realm(&self, realm: &Url) -> Admission {
        let Some(other) = Origin::of(realm) else {
            return Admission::Refused("is not an http or https URL");
        };
        if self.https && !other.https {
            return Admission::Refused("would downgrade HTTPS to plain HTTP");
        }
        if other.https || other.host == self.host {
            Admission::WithCredentials
        } else {
            Admission::WithoutCredentials
        }
    }
}

/// Query parameters whose values this client writes itself, from a parsed digest or repository
/// name: kept in messages, where they say which blob a request was about.
const OWN_PARAMETERS: [&str; 3] = ["digest", "mount", "from"];

/// `url` for a message: without user info or fragment, each query value other than
/// [`OWN_PARAMETERS`]' replaced by `…` (a presigned URL's signature is a credential too).
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if OWN_PARAMETERS.contains(&key.as_ref()) {
                    value.into_owned()
                } else {
                    "…".to_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        shown.set_query(None);
        if !pairs.is_empty() {
            let query = pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            // Written as text, not re-encoded: `…` is for a person to read, not a URL to send.
            return format!("{shown}?{query}");
        }
    }
    shown.to_string()
}

/// [`redact`] for text that may not even parse as a URL (a `Location` the registry mangled):
/// the part before any `?` or `#`, without anything up to an `@` in its authority.
pub fn redact_text(text: &str) -> String {
    if let Ok(url) = Url::parse(text) {
        return redact(&url);
    }
    let cut = text.find(['?', '#']).unwrap_or(text.len());
    let (head, rest) = (&text[..cut], &text[cut..]);
    let head = match head.split_once("://") {
        Some((scheme, after)) => {
            let authority_end = after.find('/').unwrap_or(after.len());
            let authority = &after[..authority_end];
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{}", &after[authority_end..])
        }
        None => head.to_owned(),
    };
    if rest.is_empty() {
        head
    } else {
        format!("{head}?…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn origin(text: &str) -> Origin {
        Origin::of(&url(text)).unwrap()
    }

    #[test]
    fn the_same_scheme_host_and_port_get_credentials_and_nothing_else_does() {
        let registry = origin("http://127.0.0.1:5000/v2/a/blobs/uploads/");
        let admit = |u: &str| registry.admit(&url(u));
        assert_eq!(
            admit("http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=s"),
            Admission::WithCredentials
        );
        for elsewhere in [
            "http://127.0.0.2:5000/v2/a/blobs/uploads/x",
            "http://127.0.0.1:5001/v2/a/blobs/uploads/x",
            "https://127.0.0.1:5000/v2/a/blobs/uploads/x",
            "http://localhost:5000/v2/a",
            "https://storage.example/blob?X-Amz-Signature=abc",
        ] {
            assert_eq!(
                admit(elsewhere),
                Admission::WithoutCredentials,
                "{elsewhere}"
            );
        }
        assert!(matches!(admit("file:///etc/passwd"), Admission::Refused(_)));
    }

    #[test]
    fn default_ports_and_letter_case_are_the_same_origin() {
        let registry = origin("https://Registry.Example/v2/");
        assert_eq!(
            registry.admit(&url("https://registry.example:443/v2/a/tags/list?n=1")),
            Admission::WithCredentials
        );
        assert_eq!(
            origin("http://h/").admit(&url("http://h:80/x")),
            Admission::WithCredentials
        );
    }

    #[test]
    fn https_handed_over_to_plain_http_is_refused() {
        let registry = origin("https://ghcr.io/v2/o/r/blobs/uploads/");
        assert_eq!(
            registry.admit(&url("http://ghcr.io/v2/o/r/blobs/uploads/x")),
            Admission::Refused("would downgrade HTTPS to plain HTTP")
        );
        assert_eq!(
            registry.admit(&url("http://storage.example/x")),
            Admission::Refused("would downgrade HTTPS to plain HTTP")
        );
        assert_eq!(
            registry.admit_realm(&url("http://ghcr.io/token")),
            Admission::Refused("would downgrade HTTPS to plain HTTP")
        );
    }

    #[test]
    fn a_realm_gets_credentials_over_https_or_on_a_plain_registry_s_own_host() {
        let hub = origin("https://registry-1.docker.io/v2/library/busybox/manifests/1");
        assert_eq!(
            hub.admit_realm(&url("https://auth.docker.io/token")),
            Admission::WithCredentials
        );
        let local = origin("http://127.0.0.1:5000/v2/a/manifests/1");
        assert_eq!(
            local.admit_realm(&url("http://127.0.0.1:5001/token")),
            Admission::WithCredentials
        );
        assert_eq!(
            local.admit_realm(&url("https://auth.example/token")),
            Admission::WithCredentials
        );
        assert_eq!(
            local.admit_realm(&url("http://127.0.0.2:5000/token")),
            Admission::WithoutCredentials
        );
        assert!(matches!(
            local.admit_realm(&url("ftp://127.0.0.1/token")),
            Admission::Refused(_)
        ));
    }

    #[test]
    fn messages_show_no_user_info_and_no_foreign_query_values() {
        assert_eq!(
            redact(&url(
                "https://user:pw@s3.example/b/k?X-Amz-Credential=AKIA&X-Amz-Signature=abc#frag"
            )),
            "https://s3.example/b/k?X-Amz-Credential=…&X-Amz-Signature=…"
        );
        assert_eq!(
            redact(&url(
                "http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=secret&digest=sha256:ab"
            )),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=…&digest=sha256:ab"
        );
        assert_eq!(
            redact(&url(
                "http://h/v2/a/blobs/uploads/?mount=sha256:ab&from=x/y"
            )),
            "http://h/v2/a/blobs/uploads/?mount=sha256:ab&from=x/y"
        );
        assert_eq!(
            redact(&url("http://h/v2/a/tags/list")),
            "http://h/v2/a/tags/list"
        );
        // A port out of range: not a URL, still shown without its user info and query.
        assert_eq!(
            redact_text("http://u:p@h:99999/x?sig=abc"),
            "http://h:99999/x?…"
        );
        assert_eq!(redact_text("http://u:p@h/x?sig=abc"), "http://h/x?sig=…");
        assert_eq!(redact_text("not a url?sig=abc"), "not a url?…");
    }
}
