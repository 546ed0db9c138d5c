//! What a compose service says about running its container, carried into format 1.1 where the
//! format can say it, else a note: published ports (→ the `dev` stage of a `local` Docker site),
//! named volumes (→ the container's persistent `volumes` and `mounts`), `healthcheck` (→
//! `health`), `command` (→ the `CMD` of a Dockerfile init generates), `stop_grace_period` (→
//! `stop_grace`), `restart` (a Docker site
//! always runs `unless-stopped`: a note when compose asks otherwise), and every other key (a
//! note naming it).

use std::collections::BTreeSet;

use yaml_serde::Value;

use super::{sanitize_name, Compose, Health, HealthCommand, Scan, Service};

/// The keys compose services use that init reads (the others are listed in a note).
const READ: &[&str] = &[
    "build",
    "image",
    "ports",
    "expose",
    "environment",
    "env_file",
    "depends_on",
    "volumes",
    "healthcheck",
    "command",
    "restart",
    "stop_grace_period",
];

/// Carries `spec`'s runtime settings into `s` (service `raw` of compose file `path`).
pub(super) fn carry(path: &str, raw: &str, spec: &Value, scan: &mut Scan, s: &mut Service) {
    let mut c = s.compose.take().unwrap_or_default();
    let at = format!("{path}: service {raw}");
    published((path, &at), spec, scan, &mut c, s);
    volumes((path, &at), spec, scan, &mut c, s);
    if let Some(h) = spec.get("healthcheck") {
        c.health = health(&at, h, scan);
        if let Some(h) = &c.health {
            let what = match &h.command {
                Some(HealthCommand::Exec(v)) => v.join(" "),
                Some(HealthCommand::Shell(t)) => format!("sh -c {t}"),
                None => "none".into(),
            };
            s.why(path, format!("health: {what} (compose healthcheck)"));
        }
    }
    if let Some(cmd) = spec.get("command") {
        match command(cmd) {
            Some(v) => {
                s.why(path, format!("command {v:?} (compose command)"));
                c.command = Some(v);
            }
            None => scan.note(format!(
                "{at}: command is neither text nor a list of text: not carried"
            )),
        }
    }
    restart(&at, spec, scan);
    if let Some(text) = spec.get("stop_grace_period").and_then(scalar) {
        c.stop_grace = stop_grace(&at, &text, scan);
        if let Some(g) = &c.stop_grace {
            s.why(path, format!("stop_grace {g} (compose stop_grace_period)"));
        }
    }
    let other: Vec<&str> = spec
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.as_str())
        .filter(|k| !READ.contains(k))
        .collect();
    if !other.is_empty() {
        scan.note(format!(
            "{at}: {} not carried over (format 1.1 has no such setting): apply by hand if needed",
            other.join(", ")
        ));
    }
    s.compose = Some(c);
}

/// `ports:` entries that publish a host port, as a stage's `ports` writes them.
/// Where a setting is read: the compose file, and `FILE: service NAME` for notes.
type At<'a> = (&'a str, &'a str);

fn published((path, at): At, spec: &Value, scan: &mut Scan, c: &mut Compose, s: &mut Service) {
    for p in spec
        .get("ports")
        .and_then(|p| p.as_sequence())
        .into_iter()
        .flatten()
    {
        match publish(p) {
            Ok(Some(p)) => {
                s.why(
                    path,
                    format!("published {p} (compose ports): the dev stage publishes it"),
                );
                c.published.insert(p);
            }
            Ok(None) => {}
            Err(e) => scan.note(format!("{at}: ports {e}: not published")),
        }
    }
}

/// A compose port as `[IP:]HOST:CONTAINER[/PROTO]`; `None` when no host port is named.
fn publish(v: &Value) -> Result<Option<String>, String> {
    let (ip, host, target, proto) = match v {
        Value::Mapping(m) => {
            let get = |k: &str| m.get(k).and_then(scalar);
            match get("published") {
                None => return Ok(None),
                Some(h) => (
                    get("host_ip"),
                    h,
                    get("target").unwrap_or_default(),
                    get("protocol"),
                ),
            }
        }
        other => {
            let text = scalar(other).unwrap_or_default();
            let (spec, proto) = match text.split_once('/') {
                Some((a, p)) => (a.to_owned(), Some(p.to_owned())),
                None => (text.clone(), None),
            };
            let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
            match parts.as_slice() {
                [_] => return Ok(None),
                [t, h] => (None, h.to_string(), t.to_string(), proto),
                [t, h, ip] => (Some(ip.to_string()), h.to_string(), t.to_string(), proto),
                _ => return Err(format!("{text:?} not understood")),
            }
        }
    };
    let port = |p: &str| p.parse::<u16>().ok().filter(|n| *n > 0);
    let (Some(h), Some(t)) = (port(&host), port(&target)) else {
        return Err(format!("{host}:{target} (a range or not a number)"));
    };
    let proto = match proto.as_deref() {
        None | Some("tcp") => String::new(),
        Some(p @ ("udp" | "sctp")) => format!("/{p}"),
        Some(p) => return Err(format!("{h}:{t}/{p}: unknown protocol")),
    };
    match ip.as_deref().filter(|ip| !ip.is_empty()) {
        None => Ok(Some(format!("{h}:{t}{proto}"))),
        Some(ip) if ip.parse::<std::net::Ipv4Addr>().is_ok() => {
            Ok(Some(format!("{ip}:{h}:{t}{proto}")))
        }
        Some(ip) => Err(format!("{ip}:{h}:{t}: only an IPv4 address can be named")),
    }
}

/// Named volumes → persistent pod volumes mounted where compose mounts them; bind mounts,
/// anonymous volumes and tmpfs are notes.
fn volumes((path, at): At, spec: &Value, scan: &mut Scan, c: &mut Compose, s: &mut Service) {
    for v in spec
        .get("volumes")
        .and_then(|p| p.as_sequence())
        .into_iter()
        .flatten()
    {
        let (kind, source, target, ro) = match v {
            Value::Mapping(m) => {
                let get = |k: &str| m.get(k).and_then(scalar).unwrap_or_default();
                let ro = m.get("read_only").and_then(|b| b.as_bool()) == Some(true);
                (get("type"), get("source"), get("target"), ro)
            }
            other => {
                let text = scalar(other).unwrap_or_default();
                let parts: Vec<&str> = text.splitn(3, ':').collect();
                let (source, target, mode) = match parts.as_slice() {
                    [t] => ("", *t, ""),
                    [s, t] => (*s, *t, ""),
                    [s, t, m] => (*s, *t, *m),
                    _ => ("", "", ""),
                };
                let kind = if source.is_empty() {
                    "volume"
                } else if source.starts_with(['.', '/', '~']) {
                    "bind"
                } else {
                    "volume"
                };
                let ro = mode.split(',').any(|m| m == "ro");
                (kind.to_owned(), source.to_owned(), target.to_owned(), ro)
            }
        };
        named_volume((path, at), scan, c, s, (&kind, &source, &target, ro));
    }
}

/// One volume entry: (type, source, target, read-only).
fn named_volume(
    (path, at): At,
    scan: &mut Scan,
    c: &mut Compose,
    s: &mut Service,
    (kind, source, target, ro): (&str, &str, &str, bool),
) {
    let valid_target = target.starts_with('/') && !target.contains([':', '\n', '\r', '\0']);
    if kind != "volume" || source.is_empty() || !valid_target {
        let what = match (kind, source.is_empty()) {
            ("bind", _) => {
                format!("the bind mount {source}:{target} (a directory of this machine)")
            }
            ("volume", true) => format!("the anonymous volume {target}"),
            _ => format!("the {kind} mount {source}:{target}"),
        };
        scan.note(format!(
            "{at}: {what} is not carried over: format 1.1 mounts only pod volumes (add a volume and a mount by hand, or copy the files into the image)"
        ));
        return;
    }
    let name = sanitize_name(source, "data");
    s.why(
        path,
        format!("volume {name}: persistent, mounted at {target} (compose volume {source})"),
    );
    if ro {
        scan.note(format!("{at}: volume {source} is mounted read-only in compose; format 1.1 mounts are read-write"));
    }
    if c.volumes.insert(name.clone(), target.to_owned()).is_some() {
        scan.note(format!(
            "{at}: volume {source} is mounted twice: only {target} is kept"
        ));
    }
}

/// A compose `healthcheck` as `health`: `test` → `command`, `interval`, `timeout`, `retries`,
/// `start_period` → `grace`; `disable` or `NONE` and anything that does not fit are notes.
fn health(at: &str, h: &Value, scan: &mut Scan) -> Option<Health> {
    if h.get("disable").and_then(|d| d.as_bool()) == Some(true) {
        scan.note(format!("{at}: healthcheck disabled: no health carried"));
        return None;
    }
    let command = match h.get("test") {
        Some(Value::Sequence(items)) => {
            let words: Vec<String> = items.iter().filter_map(scalar).collect();
            match words.split_first() {
                Some((first, rest)) if first == "CMD" && !rest.is_empty() => {
                    Some(HealthCommand::Exec(rest.to_vec()))
                }
                Some((first, rest)) if first == "CMD-SHELL" && rest.len() == 1 => {
                    Some(HealthCommand::Shell(rest[0].clone()))
                }
                Some((first, _)) if first == "NONE" => {
                    scan.note(format!("{at}: healthcheck test NONE: no health carried"));
                    return None;
                }
                _ => {
                    scan.note(format!(
                        "{at}: healthcheck test {words:?} not understood: no health carried"
                    ));
                    return None;
                }
            }
        }
        Some(Value::String(t)) => Some(HealthCommand::Shell(t.clone())),
        _ => None,
    };
    let mut out = Health {
        command,
        ..Health::default()
    };
    for (key, slot) in [
        ("interval", &mut out.interval),
        ("timeout", &mut out.timeout),
        ("start_period", &mut out.grace),
    ] {
        if let Some(v) = h.get(key).and_then(scalar) {
            match duration(&v) {
                Some(d) => *slot = Some(d),
                None => scan.note(format!(
                    "{at}: healthcheck {key} {v:?} is not a duration format 1.1 can write (ms, s or m, at most 6 digits): not carried"
                )),
            }
        }
    }
    if let Some(r) = h.get("retries").and_then(|r| r.as_u64()) {
        out.retries = Some(r.clamp(1, 100) as u32);
        if !(1..=100).contains(&r) {
            scan.note(format!(
                "{at}: healthcheck retries {r} is outside 1-100: {} carried",
                r.clamp(1, 100)
            ));
        }
    }
    for key in ["start_interval"] {
        if h.get(key).is_some() {
            scan.note(format!("{at}: healthcheck {key} not carried over"));
        }
    }
    Some(out)
}

/// A compose (Go) duration (`1m30s`, `500ms`, `10s`) as format 1.1 writes one: whole seconds
/// as `Ns` (or `Nm`), else `Nms`; `None` when it does not parse or is too long.
pub(super) fn duration(text: &str) -> Option<String> {
    let mut ms: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        ms = ms.checked_add(n.checked_mul(factor)?)?;
        rest = &rest[unit..];
    }
    let out = if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    };
    (out.trim_end_matches(char::is_alphabetic).len() <= 6).then_some(out)
}

/// A compose `command` in exec form: a list as it is, text split as compose splits it (shell
/// words, no shell).
fn command(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Sequence(items) => {
            let words: Vec<String> = items.iter().filter_map(scalar).collect();
            (words.len() == items.len() && !words.is_empty()).then_some(words)
        }
        Value::String(t) => shlex::split(t).filter(|w| !w.is_empty()),
        _ => None,
    }
}

/// `restart:`: a Docker site runs every container `unless-stopped`; any other policy is a note.
fn restart(at: &str, spec: &Value, scan: &mut Scan) {
    let Some(policy) = spec.get("restart").and_then(scalar) else {
        return;
    };
    if policy != "unless-stopped" {
        scan.note(format!(
            "{at}: restart: {policy} is not carried over: a Docker site runs every container with restart policy unless-stopped (format 1.1 has no per-container policy)"
        ));
    }
}

/// `stop_grace_period` as `stop_grace` (at most an hour, as format 1.1 takes it), else a note.
fn stop_grace(at: &str, text: &str, scan: &mut Scan) -> Option<String> {
    let grace = duration(text).filter(|d| {
        crate::model::lifecycle::duration(d)
            .is_some_and(|d| d <= crate::model::lifecycle::MAX_STOP_GRACE)
    });
    if grace.is_none() {
        scan.note(format!(
            "{at}: stop_grace_period {text:?} is not a duration of at most 60m: not carried"
        ));
    }
    grace
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Named volumes used by more than one service of one compose file: each container gets its
/// own in format 1.1 (a note).
pub(super) fn shared_volumes(path: &str, services: &[&Service], scan: &mut Scan) {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut shared: BTreeSet<&str> = BTreeSet::new();
    for s in services {
        for v in s.compose.iter().flat_map(|c| c.volumes.keys()) {
            if !seen.insert(v) {
                shared.insert(v);
            }
        }
    }
    for v in shared {
        scan.note(format!(
            "{path}: volume {v} is shared by several services; a format 1.1 persistent volume belongs to one container, so each gets its own"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_durations_become_format_durations() {
        assert_eq!(duration("1m30s").as_deref(), Some("90s"));
        assert_eq!(duration("2m").as_deref(), Some("2m"));
        assert_eq!(duration("1h").as_deref(), Some("60m"));
        assert_eq!(duration("1500ms").as_deref(), Some("1500ms"));
        assert_eq!(duration("10s").as_deref(), Some("10s"));
        assert_eq!(duration("0s").as_deref(), Some("0s"));
        assert_eq!(duration("10"), None, "a unit is required");
        assert_eq!(duration("1d"), None);
        assert_eq!(duration("99999999999m"), None, "longer than 6 digits");
    }

    #[test]
    fn published_ports_keep_host_and_address() {
        let p = |s: &str| publish(&Value::String(s.into()));
        assert_eq!(p("8000:8000").unwrap().as_deref(), Some("8000:8000"));
        assert_eq!(
            p("127.0.0.1:8080:80").unwrap().as_deref(),
            Some("127.0.0.1:8080:80")
        );
        assert_eq!(p("5353:53/udp").unwrap().as_deref(), Some("5353:53/udp"));
        assert_eq!(p("3000").unwrap(), None, "no host port: only exposed");
        assert!(p("3000-3005:3000-3005").is_err());
        assert!(p("[::1]:80:80").is_err());
    }
}
