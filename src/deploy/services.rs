//! What a running container actually offers: its listening ports and its processes, classified
//! as `web`, `database`, `cache`, `queue` or `worker` (`cookbook status`).
//!
//! Pipeline position: the engine's answers for one container — the text of `/proc/net/tcp` and
//! `/proc/net/tcp6` read inside it, and its process list (`docker top`) — → **`Services`** (pure,
//! tested with plain values) → printed by `status`. Gathering goes through the engine API only
//! (`deploy::docker`), so it works for a remote engine as well as a local one.
//!
//! Invariants: a port counts only in the LISTEN state (`0A`), each once however many addresses
//! it listens on; a class comes from a known port or a known process name, never from a guess;
//! a container with processes but no listening port is a `worker`; when the sockets could not be
//! read (an image without `cat`) nothing is classified from ports and the reason is kept.
//!
//! Parsing /proc/net/tcp by hand: its format is a fixed kernel table (`sl local_address
//! rem_address st …`, addresses as hex `IP:PORT`); no maintained crate parses it from text
//! read elsewhere (`procfs` reads the local /proc only, and these files are inside a container
//! on a possibly remote engine).

use std::collections::BTreeSet;

use serde::Serialize;

/// A class of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Web,
    Database,
    Cache,
    Queue,
    Worker,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Web => "web",
            Kind::Database => "database",
            Kind::Cache => "cache",
            Kind::Queue => "queue",
            Kind::Worker => "worker",
        }
    }
}

/// What one container offers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Services {
    /// TCP ports in the LISTEN state, ascending.
    pub listening: Vec<u16>,
    /// Process names (the program's base name), sorted, each once.
    pub processes: Vec<String>,
    /// The classes found, in `Kind` order.
    pub kinds: Vec<Kind>,
    /// Why the listening sockets are unknown (e.g. no `cat` in the image), when they are.
    pub note: Option<String>,
}

/// Docker's embedded DNS server for user-defined networks listens on 127.0.0.11 (a random TCP
/// port) inside every container's network namespace: the engine's, not the container's.
const DOCKER_DNS: &str = "0B00007F";

/// The TCP ports in the LISTEN state (`st` = `0A`) in the text of `/proc/net/tcp` and/or
/// `/proc/net/tcp6` (both may be concatenated; header lines are skipped), leaving out Docker's
/// embedded DNS server.
pub fn listening_ports(proc_net_tcp: &str) -> Vec<u16> {
    let mut ports = BTreeSet::new();
    for line in proc_net_tcp.lines() {
        let mut fields = line.split_whitespace();
        let (Some(slot), Some(local), Some(_remote), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // Data lines start with `N:`; the header starts with `sl`.
        if !slot.ends_with(':') || !state.eq_ignore_ascii_case("0A") {
            continue;
        }
        if local
            .split_once(':')
            .is_some_and(|(ip, _)| ip == DOCKER_DNS)
        {
            continue;
        }
        if let Some(port) = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        {
            ports.insert(port);
        }
    }
    ports.into_iter().collect()
}

/// A process's name from its command line as `docker top` shows it (`/usr/bin/redis-server
/// *:6379`, `/bin/sh -c …`, `[nginx]`): the base name of the program, and for an
/// interpreter (`sh`, `python`, `node`, …) the base name of the script it runs.
pub fn process_name(command: &str) -> Option<String> {
    let mut words = command
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '[' || c == ']' || c == '{' || c == '}'))
        .filter(|w| !w.is_empty());
    let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_owned();
    let first = base(words.next()?);
    let interpreter = matches!(
        first.as_str(),
        "sh" | "bash" | "ash" | "dash" | "python" | "python3" | "node" | "ruby" | "perl" | "java"
    );
    if interpreter {
        // The first word that is not an option names the script (`sh -c CMD`: CMD's program).
        let rest: Vec<&str> = words.collect();
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                "-c" => return rest.get(i + 1).map(|w| base(w)).or(Some(first)),
                "-jar" | "-m" => return rest.get(i + 1).map(|w| base(w)).or(Some(first)),
                w if w.starts_with('-') => i += 1,
                w => return Some(base(w)),
            }
        }
    }
    Some(first)
}

/// The command lines of the container's own processes: its main process (host PID `root`) and
/// its descendants, from `(pid, ppid, command)` rows as `docker top` lists them. Processes
/// started by `docker exec` — health checks, and status's own `cat` — are children of the
/// runtime, not of the main process, so they are left out.
pub fn main_tree(rows: &[(u32, u32, String)], root: u32) -> Vec<String> {
    let mut keep = BTreeSet::from([root]);
    // Parents may be listed after their children: repeat until nothing new joins.
    loop {
        let before = keep.len();
        for (pid, ppid, _) in rows {
            if keep.contains(ppid) {
                keep.insert(*pid);
            }
        }
        if keep.len() == before {
            break;
        }
    }
    rows.iter()
        .filter(|(pid, _, _)| keep.contains(pid))
        .map(|(_, _, cmd)| cmd.clone())
        .collect()
}

/// The class a well-known port implies.
pub fn kind_of_port(port: u16) -> Option<Kind> {
    Some(match port {
        80 | 443 | 3000 | 4000 | 5000 | 8000 | 8008 | 8080 | 8081 | 8443 | 8888 | 9000 => Kind::Web,
        3306 | 5432 | 1521 | 1433 | 27017 | 9042 | 7474 | 7687 | 26257 | 8529 | 5984 | 9200 => {
            Kind::Database
        }
        6379 | 11211 => Kind::Cache,
        5672 | 4222 | 9092 | 1883 | 61613 | 61616 | 4150 => Kind::Queue,
        _ => return None,
    })
}

/// The class a well-known process name implies (a server program, matched by prefix so that
/// `postgres`, `postgresql`, `redis-server`, `httpd`, `nginx: master` all count).
pub fn kind_of_process(name: &str) -> Option<Kind> {
    const TABLE: &[(&str, Kind)] = &[
        ("nginx", Kind::Web),
        ("httpd", Kind::Web),
        ("apache2", Kind::Web),
        ("caddy", Kind::Web),
        ("lighttpd", Kind::Web),
        ("traefik", Kind::Web),
        ("envoy", Kind::Web),
        ("haproxy", Kind::Web),
        ("gunicorn", Kind::Web),
        ("uvicorn", Kind::Web),
        ("puma", Kind::Web),
        ("unicorn", Kind::Web),
        ("php-fpm", Kind::Web),
        ("postgres", Kind::Database),
        ("mysqld", Kind::Database),
        ("mariadbd", Kind::Database),
        ("mongod", Kind::Database),
        ("cockroach", Kind::Database),
        ("clickhouse", Kind::Database),
        ("cassandra", Kind::Database),
        ("elasticsearch", Kind::Database),
        ("redis", Kind::Cache),
        ("memcached", Kind::Cache),
        ("valkey", Kind::Cache),
        ("rabbitmq", Kind::Queue),
        ("beam.smp", Kind::Queue),
        ("nats-server", Kind::Queue),
        ("kafka", Kind::Queue),
        ("mosquitto", Kind::Queue),
        ("celery", Kind::Worker),
        ("sidekiq", Kind::Worker),
        ("rq", Kind::Worker),
    ];
    let name = name.to_ascii_lowercase();
    TABLE
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, kind)| *kind)
}

/// Classifies a container from its listening ports (`None`: unknown, with `note` saying why) and
/// its process command lines.
pub fn classify(
    listening: Option<Vec<u16>>,
    commands: &[String],
    note: Option<String>,
) -> Services {
    let processes: Vec<String> = commands
        .iter()
        .filter_map(|c| process_name(c))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut kinds: BTreeSet<Kind> = BTreeSet::new();
    kinds.extend(processes.iter().filter_map(|p| kind_of_process(p)));
    let ports = listening.clone().unwrap_or_default();
    kinds.extend(ports.iter().filter_map(|p| kind_of_port(*p)));
    // Processes that listen nowhere do background work. Unknown sockets say nothing either way.
    if kinds.is_empty() && listening.as_ref().is_some_and(Vec::is_empty) && !processes.is_empty() {
        kinds.insert(Kind::Worker);
    }
    Services {
        listening: ports,
        processes,
        kinds: kinds.into_iter().collect(),
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a busybox container running `httpd -p 8080` and `nc -ll -p 5432`, with one
    /// established and one TIME_WAIT connection.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41235 1 0000000000000000 100 0 0 10 0
   1: 0100007F:C5C2 0100007F:1539 06 00000000:00000000 03:0000176F 00000000     0        0 0 3 00000000958f94ee
   2: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 41240 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41300 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41301 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn listen_state_only_each_port_once() {
        assert_eq!(listening_ports(TCP), vec![8080]);
        assert_eq!(listening_ports(TCP6), vec![5432, 8080]);
        assert_eq!(listening_ports(&format!("{TCP}{TCP6}")), vec![5432, 8080]);
        assert_eq!(listening_ports(""), Vec::<u16>::new());
        assert_eq!(listening_ports("garbage\n0: x\n"), Vec::<u16>::new());
    }

    #[test]
    fn dockers_dns_is_not_the_containers() {
        let dns = "   3: 0B00007F:9131 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4123 1 0 100 0 0 10 0\n";
        assert_eq!(listening_ports(&format!("{TCP}{dns}")), vec![8080]);
    }

    #[test]
    fn only_the_main_process_tree() {
        let rows = vec![
            (100, 90, "/bin/sh /srv/worker/work.sh".to_owned()),
            (120, 100, "sleep 5".to_owned()),
            // A health check and status's own exec: children of the runtime.
            (130, 80, "/srv/api/cgi-bin/orders".to_owned()),
            (131, 80, "runc init".to_owned()),
            // A grandchild listed before its parent.
            (150, 140, "nc -l".to_owned()),
            (140, 100, "sh -c nc -l".to_owned()),
        ];
        assert_eq!(
            main_tree(&rows, 100),
            vec![
                "/bin/sh /srv/worker/work.sh",
                "sleep 5",
                "nc -l",
                "sh -c nc -l"
            ]
        );
        assert_eq!(main_tree(&rows, 999), Vec::<String>::new());
    }

    #[test]
    fn process_names() {
        assert_eq!(
            process_name("httpd -f -p 80 -h /srv/web"),
            Some("httpd".into())
        );
        assert_eq!(
            process_name("/usr/bin/redis-server *:6379"),
            Some("redis-server".into())
        );
        assert_eq!(
            process_name("/bin/sh /srv/worker/work.sh"),
            Some("work.sh".into())
        );
        assert_eq!(
            process_name("python3 -u -m celery worker"),
            Some("celery".into())
        );
        assert_eq!(process_name("/bin/sh -c sleep 5"), Some("sleep".into()));
        assert_eq!(process_name("[nginx]"), Some("nginx".into()));
        assert_eq!(process_name("   "), None);
        assert_eq!(process_name("sh"), Some("sh".into()));
    }

    #[test]
    fn classes() {
        // An httpd: web by its name and by its port.
        let web = classify(
            Some(vec![80]),
            &["httpd -f -p 80 -h /srv/web/public".to_owned()],
            None,
        );
        assert_eq!(web.kinds, vec![Kind::Web]);
        assert_eq!(web.processes, vec!["httpd"]);
        // busybox nc standing in for a database: the port says it.
        let db = classify(
            Some(vec![5432]),
            &["nc -ll -p 5432 -e cat /var/lib/db/VERSION".to_owned()],
            None,
        );
        assert_eq!(db.kinds, vec![Kind::Database]);
        let cache = classify(Some(vec![6379]), &["redis-server *:6379".to_owned()], None);
        assert_eq!(cache.kinds, vec![Kind::Cache]);
        let queue = classify(
            Some(vec![5672, 25672]),
            &["beam.smp -- -root".to_owned()],
            None,
        );
        assert_eq!(queue.kinds, vec![Kind::Queue]);
        // Processes and no listening port: a worker.
        let worker = classify(
            Some(vec![]),
            &[
                "/bin/sh /srv/worker/work.sh".to_owned(),
                "sleep 5".to_owned(),
            ],
            None,
        );
        assert_eq!(worker.kinds, vec![Kind::Worker]);
        assert_eq!(worker.processes, vec!["sleep", "work.sh"]);
        // An unknown port: listed, not classified.
        let other = classify(Some(vec![7000]), &["myserver".to_owned()], None);
        assert_eq!(other.kinds, Vec::<Kind>::new());
        assert_eq!(other.listening, vec![7000]);
        // Sockets unknown (no `cat`): no guess from the absence of ports.
        let blind = classify(
            None,
            &["myjob".to_owned()],
            Some("no `cat` in the image".to_owned()),
        );
        assert_eq!(blind.kinds, Vec::<Kind>::new());
        assert_eq!(blind.note.as_deref(), Some("no `cat` in the image"));
        // A process name still classifies without sockets.
        let named = classify(None, &["postgres -D /data".to_owned()], None);
        assert_eq!(named.kinds, vec![Kind::Database]);
        // Nothing at all: nothing.
        assert_eq!(classify(Some(vec![]), &[], None).kinds, Vec::<Kind>::new());
    }
}
