//! A repository's tags: `GET /v2/<name>/tags/list?n=<page>`, following the registry's
//! `Link: <…>; rel="next"` pages (the distribution spec's "Listing Tags"; RFC 8288 for the
//! header).
//!
//! Place in the pipeline: `apply`'s cache check (`apply/check.rs`) lists each repository once
//! when the lock already records its images, instead of one manifest request per container;
//! `verify` and the tests read what was published. Either way the answer only says which tags
//! exist: it carries no digest, and nothing here trusts it with one.
//!
//! A tag list is hostile input like any registry answer:
//! - a `next` page must be on the registry's own origin (scheme, host and port: [`Origin`]) and
//!   be this repository's tag list (the same path), a relative reference resolved against the
//!   page that named it; anything else is refused ([`RegistryError::UnsafeUrl`]) and nothing is
//!   sent there, so a page cannot turn the listing into a request to another host or another
//!   API of the same one;
//! - a page that points back at one already read (itself or an earlier one, its query in any
//!   order) is a loop and an error, not a reason to read it again; at most
//!   [`MAX_TAG_LIST_PAGES`] pages and [`MAX_TAG_LIST_BYTES`] in all are read (`super::body`);
//! - a malformed answer — a body that is not `{"tags": [...]}`, a tag outside the reference
//!   grammar's, a `Link` header that does not parse, two different `next` links — is
//!   [`RegistryError::InvalidResponse`], never a panic and never a silently shorter list;
//! - credentials and tokens as for every call (`RegistryClient::call`): the bearer flow of the
//!   repository's pull scope, credentials only to the registry's origin.
//!
//! A `404` for the first page is a repository that does not exist yet: no tags. A `404` for a
//! later page is a registry contradicting itself: an error.
//!
//! The `Link` header is parsed here rather than with the `parse_link_header` crate: that crate
//! keys links by their whole `rel` value in a `HashMap` (so `rel="next last"` is not found as
//! `next`, and two `next` links collapse into one), and its regex and `lazy_static`
//! dependencies are more than the one relation read here needs.

use std::collections::BTreeSet;

use reqwest::header::LINK;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::body::{read_page_capped, BodyKind, MAX_TAG_LIST_BYTES, MAX_TAG_LIST_PAGES};
use super::client::{header, invalid, unexpected, Access, RegistryClient, RegistryError};
use super::origin::{redact, Origin};
use crate::oci::Repository;
use crate::retry::RetryPolicy;

/// The tags asked for per page (`?n=`): distribution answers up to this many per page and
/// names the next page in a `Link`; a registry that ignores `n` answers all at once, which is
/// just as good. Large enough that a repository of a few hundred content tags is one request.
pub const TAG_PAGE_SIZE: u32 = 1000;

/// The longest tag Docker's reference grammar allows (`[\w][\w.-]{0,127}`).
const MAX_TAG_LENGTH: usize = 128;

impl RegistryClient {
    /// Every tag of `repo`, following pagination; empty if the repository does not exist.
    /// Transient failures are retried as for every call.
    pub async fn tags_list(&self, repo: &Repository) -> Result<Vec<String>, RegistryError> {
        let retry = self.retry;
        self.list_tags(repo, &retry).await
    }

    /// [`Self::tags_list`] without retries: for a caller that has a cheaper answer to a failure
    /// than waiting for the registry (`apply`'s cache check falls back to one manifest request
    /// per container), so a registry answering 5xx to the listing costs one round trip.
    pub async fn tags_list_once(&self, repo: &Repository) -> Result<Vec<String>, RegistryError> {
        let once = RetryPolicy {
            max_attempts: 1,
            ..self.retry
        };
        self.list_tags(repo, &once).await
    }

    async fn list_tags(
        &self,
        repo: &Repository,
        retry: &RetryPolicy,
    ) -> Result<Vec<String>, RegistryError> {
        #[derive(Deserialize)]
        struct Page {
            tags: Option<Vec<String>>,
        }
        let mut first = self.url(repo, &["tags", "list"])?;
        first
            .query_pairs_mut()
            .append_pair("n", &TAG_PAGE_SIZE.to_string());
        let mut url = first.clone();
        let mut seen = BTreeSet::new();
        let mut tags = Vec::new();
        let mut read: u64 = 0;
        for page in 0..MAX_TAG_LIST_PAGES {
            seen.insert(page_key(&url));
            let response = self
                .call_retried(Method::GET, repo, &url, Access::Pull, false, None, retry)
                .await?;
            match response.status() {
                StatusCode::NOT_FOUND if page == 0 => return Ok(Vec::new()),
                StatusCode::OK => {}
                _ => return Err(unexpected(&url, response).await),
            }
            let link = header(&response, LINK.as_str());
            let body =
                read_page_capped(&url, response, BodyKind::TagList, MAX_TAG_LIST_BYTES, read)
                    .await?;
            read += body.len() as u64;
            let page: Page = serde_json::from_slice(&body)
                .map_err(|e| invalid(&url, format!("tag list: {e}")))?;
            for tag in page.tags.unwrap_or_default() {
                if !is_tag(&tag) {
                    return Err(invalid(
                        &url,
                        format!(
                            "tag list: `{}` is not a tag",
                            tag.escape_debug()
                                .take(MAX_TAG_LENGTH + 8)
                                .collect::<String>()
                        ),
                    ));
                }
                tags.push(tag);
            }
            let Some(link) = link else {
                return Ok(tags);
            };
            match next_page(&first, &url, &link, &seen) {
                Ok(Some(next)) => url = next,
                Ok(None) => return Ok(tags),
                Err(refused) => return Err(refused.into_error(&url)),
            }
        }
        Err(invalid(
            &url,
            format!("the tag list goes on past {MAX_TAG_LIST_PAGES} pages"),
        ))
    }
}

/// Why a tag list's `Link` is not followed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NotFollowed {
    /// The header does not parse (RFC 8288), or names two different `next` pages.
    Malformed(String),
    /// Another scheme, host or port than the registry's.
    OtherOrigin(Url),
    /// The registry's origin, but not this repository's tag list.
    OtherPath(Url),
    /// A page already read.
    Loop(Url),
}

impl NotFollowed {
    fn into_error(self, from: &Url) -> RegistryError {
        match self {
            NotFollowed::Malformed(reason) => {
                invalid(from, format!("tag list: its Link header {reason}"))
            }
            NotFollowed::OtherOrigin(url) => RegistryError::UnsafeUrl {
                endpoint: redact(from),
                url: redact(&url),
                reason: "is not on the registry's origin (scheme, host and port), \
                         as a tag list's next page must be",
            },
            NotFollowed::OtherPath(url) => RegistryError::UnsafeUrl {
                endpoint: redact(from),
                url: redact(&url),
                reason: "is not this repository's tag list, as a tag list's next page must be",
            },
            NotFollowed::Loop(url) => invalid(
                from,
                format!(
                    "the tag list's next page {} is one already read: a loop",
                    redact(&url)
                ),
            ),
        }
    }
}

/// The page after `current` that `link` (its `Link` header) names, if any: resolved against
/// `current`, on `first`'s origin and path, and none of the pages `seen`. Pure.
pub(super) fn next_page(
    first: &Url,
    current: &Url,
    link: &str,
    seen: &BTreeSet<String>,
) -> Result<Option<Url>, NotFollowed> {
    let Some(target) = next_target(link).map_err(NotFollowed::Malformed)? else {
        return Ok(None);
    };
    let mut next = current
        .join(&target)
        .map_err(|e| NotFollowed::Malformed(format!("names `{target}`, not a URL: {e}")))?;
    next.set_fragment(None);
    let same_origin = matches!(
        (Origin::of(first), Origin::of(&next)),
        (Some(a), Some(b)) if a == b
    );
    if !same_origin || !next.username().is_empty() || next.password().is_some() {
        return Err(NotFollowed::OtherOrigin(next));
    }
    if next.path() != first.path() {
        return Err(NotFollowed::OtherPath(next));
    }
    if seen.contains(&page_key(&next)) {
        return Err(NotFollowed::Loop(next));
    }
    Ok(Some(next))
}

/// A page's identity for loop detection: its path and its query pairs in order, so that the
/// same page with its parameters reordered is the same page.
fn page_key(url: &Url) -> String {
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    pairs.sort();
    format!("{}?{pairs:?}", url.path())
}

/// Whether `tag` is a tag by Docker's reference grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    tag.len() <= MAX_TAG_LENGTH
        && bytes.next().is_some_and(word)
        && bytes.all(|b| word(b) || b == b'.' || b == b'-')
}

/// The target of the link whose relation types include `next` in an RFC 8288 `Link` header
/// (`#link-value`, each `"<" URI-Reference ">" *( OWS ";" OWS link-param )`), or `None` when
/// it has none. Relation types are case-insensitive and space-separated in one `rel`; only a
/// link's first `rel` counts (RFC 8288, 3.3). Two different `next` targets are an error: which
/// one the registry meant is not ours to guess.
pub(super) fn next_target(link: &str) -> Result<Option<String>, String> {
    let mut rest = link;
    let mut next: Option<String> = None;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Ok(next);
        }
        rest = rest
            .strip_prefix('<')
            .ok_or("has a link that does not start with `<`")?;
        let end = rest.find('>').ok_or("has a `<` without its `>`")?;
        let target = &rest[..end];
        rest = &rest[end + 1..];
        let mut rel: Option<String> = None;
        while let Some(after) = rest.trim_start_matches([' ', '\t']).strip_prefix(';') {
            let (name, value, after) = link_param(after)?;
            if name.eq_ignore_ascii_case("rel") && rel.is_none() {
                rel = Some(value.unwrap_or_default());
            }
            rest = after;
        }
        rest = rest.trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with(',') {
            return Err("has text after a link's parameters".into());
        }
        let is_next = rel.is_some_and(|rel| {
            rel.split_ascii_whitespace()
                .any(|t| t.eq_ignore_ascii_case("next"))
        });
        if is_next {
            match &next {
                Some(known) if known != target => {
                    return Err("names two different next pages".into());
                }
                _ => next = Some(target.to_owned()),
            }
        }
    }
}

/// One `link-param` after its `;`: `token BWS [ "=" BWS ( token / quoted-string ) ]`, and what
/// follows it.
fn link_param(text: &str) -> Result<(&str, Option<String>, &str), String> {
    let text = text.trim_start_matches([' ', '\t']);
    let name_end = text.find(|c: char| !is_tchar(c)).unwrap_or(text.len());
    if name_end == 0 {
        return Err("has a link parameter without a name".into());
    }
    let (name, rest) = text.split_at(name_end);
    let Some(rest) = rest.trim_start_matches([' ', '\t']).strip_prefix('=') else {
        return Ok((name, None, rest));
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped)) => value.push(escaped),
                    None => break,
                },
                '"' => return Ok((name, Some(value), &quoted[i + 1..])),
                c => value.push(c),
            }
        }
        return Err("has an unterminated quoted string".into());
    }
    let end = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
    if end == 0 {
        return Err(format!("has a parameter `{name}=` without a value"));
    }
    Ok((name, Some(rest[..end].to_owned()), &rest[end..]))
}

/// RFC 9110's `tchar`: the characters of a token.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    const FIRST: &str = "http://127.0.0.1:5000/v2/team/app/tags/list?n=1000";

    fn next(link: &str) -> Result<Option<Url>, NotFollowed> {
        let first = url(FIRST);
        let seen = BTreeSet::from([page_key(&first)]);
        next_page(&first, &first, link, &seen)
    }

    #[test]
    fn the_next_relation_among_others_quoted_or_not_any_case() {
        let cases = [
            r#"</v2/a/tags/list?last=b&n=2>; rel="next""#,
            r#"</v2/a/tags/list?last=b&n=2>;rel=next"#,
            r#"</v2/a/tags/list?last=b&n=2> ; rel = "prev NEXT""#,
            r#"</x?a,b>; rel="last", </v2/a/tags/list?last=b&n=2>; title="a;b,\"c"; rel="next""#,
            r#"</v2/a/tags/list?last=b&n=2>; rel="next", </v2/a/tags/list?last=b&n=2>; rel=next"#,
        ];
        for case in cases {
            assert_eq!(
                next_target(case),
                Ok(Some("/v2/a/tags/list?last=b&n=2".into())),
                "{case}"
            );
        }
    }

    #[test]
    fn no_next_relation_is_the_last_page() {
        for case in [
            "",
            " , ",
            r#"</x>; rel="prev""#,
            r#"</x>; rel="nextpage""#,
            // Only a link's first `rel` counts.
            r#"</x>; rel="prev"; rel="next""#,
        ] {
            assert_eq!(next_target(case), Ok(None), "{case}");
        }
    }

    #[test]
    fn malformed_link_headers_are_errors() {
        for case in [
            "/v2/a/tags/list; rel=next",
            "</v2/a/tags/list; rel=next",
            r#"</x>; rel="next"#,
            "</x>; =next",
            "</x>; rel=",
            "</x> junk; rel=next",
            r#"</a>; rel=next, </b>; rel=next"#,
        ] {
            assert!(next_target(case).is_err(), "{case}");
        }
    }

    #[test]
    fn a_relative_next_page_resolves_against_the_page_that_names_it() {
        assert_eq!(
            next(r#"<?last=b&n=2>; rel="next""#),
            Ok(Some(url(
                "http://127.0.0.1:5000/v2/team/app/tags/list?last=b&n=2"
            )))
        );
        assert_eq!(
            next(r#"<list?last=b>; rel="next""#),
            Ok(Some(url(
                "http://127.0.0.1:5000/v2/team/app/tags/list?last=b"
            )))
        );
        assert_eq!(
            next(r#"<http://127.0.0.1:5000/v2/team/app/tags/list?last=b#x>; rel="next""#),
            Ok(Some(url(
                "http://127.0.0.1:5000/v2/team/app/tags/list?last=b"
            )))
        );
    }

    #[test]
    fn another_origin_is_refused() {
        for target in [
            "http://127.0.0.2:5000/v2/team/app/tags/list?last=b",
            "http://127.0.0.1:5001/v2/team/app/tags/list?last=b",
            "https://127.0.0.1:5000/v2/team/app/tags/list?last=b",
            "//evil.example/v2/team/app/tags/list?last=b",
            "http://user:secret@127.0.0.1:5000/v2/team/app/tags/list?last=b",
            "file:///v2/team/app/tags/list",
        ] {
            assert!(
                matches!(
                    next(&format!("<{target}>; rel=next")),
                    Err(NotFollowed::OtherOrigin(_))
                ),
                "{target}"
            );
        }
    }

    #[test]
    fn another_path_of_the_same_registry_is_refused() {
        for target in [
            "/v2/team/other/tags/list?last=b",
            "/v2/team/app/manifests/latest",
            "/v2/_catalog",
            "/v2/team/app/tags/list/../../other/tags/list",
            "../other/tags/list",
        ] {
            assert!(
                matches!(
                    next(&format!("<{target}>; rel=next")),
                    Err(NotFollowed::OtherPath(_))
                ),
                "{target}"
            );
        }
    }

    #[test]
    fn a_page_already_read_is_a_loop() {
        // Itself, with its parameters reordered or not.
        assert!(matches!(
            next("</v2/team/app/tags/list?n=1000>; rel=next"),
            Err(NotFollowed::Loop(_))
        ));
        let first = url(FIRST);
        let second = url("http://127.0.0.1:5000/v2/team/app/tags/list?last=b&n=2");
        let seen = BTreeSet::from([page_key(&first), page_key(&second)]);
        assert!(matches!(
            next_page(
                &first,
                &second,
                "</v2/team/app/tags/list?n=2&last=b>; rel=next",
                &seen
            ),
            Err(NotFollowed::Loop(_))
        ));
        // An earlier page.
        assert!(matches!(
            next_page(&first, &second, "<?n=1000>; rel=next", &seen),
            Err(NotFollowed::Loop(_))
        ));
    }

    #[test]
    fn tags_follow_the_reference_grammar() {
        for tag in ["a", "v1.2-rc_3", "_x", &"a".repeat(128)] {
            assert!(is_tag(tag), "{tag}");
        }
        for tag in ["", ".a", "-a", "a/b", "a:b", "vé", &"a".repeat(129), "a b"] {
            assert!(!is_tag(tag), "{tag}");
        }
    }
}
