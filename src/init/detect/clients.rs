//! Client libraries become edges: a service that uses a Postgres driver depends on the project's
//! one Postgres container, found by its image (`postgres:16`, a Dockerfile `FROM postgis/…`)
//! or, failing that, by its name (`db`, `postgres`); none or several is a note.

use super::{Backing, Service, ServiceKind};

/// The kind of server a container is: by its image, and by its name.
type ServerKind = (Option<Backing>, Option<Backing>);

/// The kind of server a container is, from its image or its name.
fn backing_of(s: &Service) -> (Option<Backing>, Option<Backing>) {
    let image = match &s.kind {
        ServiceKind::Image { image } => Some(image.as_str()),
        ServiceKind::Dockerfile { from, .. } => from.as_deref(),
        ServiceKind::Generated(_) => None,
    };
    let repo = image.map(|i| {
        let no_tag = i.split(['@']).next().unwrap_or(i);
        let last = no_tag.rsplit('/').next().unwrap_or(no_tag);
        last.split(':').next().unwrap_or(last).to_owned()
    });
    let all = [
        Backing::Postgres,
        Backing::Redis,
        Backing::Mongo,
        Backing::Mysql,
    ];
    let by_image = repo.and_then(|r| {
        all.into_iter()
            .find(|b| b.images().iter().any(|i| r.starts_with(i)))
    });
    let by_name = matches!(s.kind, ServiceKind::Generated(_))
        .then_some(None)
        .unwrap_or_else(|| {
            all.into_iter()
                .find(|b| b.names().contains(&s.name.as_str()))
        });
    (by_image, by_name)
}

/// depends_on edges from client libraries to the project's one server of that kind.
pub(super) fn edges(services: &mut [Service], notes: &mut Vec<String>) {
    let kinds: Vec<(String, ServerKind)> = services
        .iter()
        .map(|s| (s.name.clone(), backing_of(s)))
        .collect();
    for s in services.iter_mut() {
        for (backing, (file, lib)) in s.clients.clone() {
            let mut servers: Vec<&str> = kinds
                .iter()
                .filter(|(n, (img, _))| *img == Some(backing) && *n != s.name)
                .map(|(n, _)| n.as_str())
                .collect();
            if servers.is_empty() {
                servers = kinds
                    .iter()
                    .filter(|(n, (_, by_name))| *by_name == Some(backing) && *n != s.name)
                    .map(|(n, _)| n.as_str())
                    .collect();
            }
            match servers.as_slice() {
                [one] => {
                    if s.depends_on.insert(one.to_string()) {
                        s.why(&file, format!("{} client {lib}: depends_on {one}", backing.label()));
                    } else {
                        s.why(&file, format!("{} client {lib}: already depends_on {one}", backing.label()));
                    }
                }
                [] => notes.push(format!(
                    "{file}: {} uses the {} client {lib}, but the project has no {} container: add one (e.g. a compose service) or set depends_on by hand",
                    s.name,
                    backing.label(),
                    backing.label()
                )),
                many => notes.push(format!(
                    "{file}: {} uses the {} client {lib} and the project has several {} containers ({}): set depends_on by hand",
                    s.name,
                    backing.label(),
                    backing.label(),
                    many.join(", ")
                )),
            }
        }
    }
}
