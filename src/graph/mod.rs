//! The dependency plan: a DAG of containers and the bottom-up waves that build and deploy them.
//!
//! Pipeline position: validated containers → **plan** → fingerprints. A `PlanBuilder` owns the
//! petgraph graph and the name → node map, merges duplicate edges, and `seal()` refuses cycles
//! (naming every one, whole) and fixes the order once. A sealed `Plan` never changes; a site's
//! portion is a new plan (`Plan::restrict`).
//!
//! Edges point from a container to what it needs. A `depends_on` entry is a runtime edge (deploy
//! order); a `container:` base image is a build-time edge (the parent must be built first and is
//! hashed into the child). Both order the waves: wave 1 needs nothing, wave n+1 needs only waves ≤ n.
//! Within a wave, containers are sorted by name, so the order never depends on the file's key order.

mod render;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

pub use render::{render_dot, render_json, render_text};

use crate::diagnostic::{pointer_push, Diagnostic};
use crate::model::{Container, Name};

/// Why one container needs another; both may hold at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeKinds {
    /// Built FROM the other container (`base_image: "container:<name>"`).
    pub build: bool,
    /// Deployed after the other container (`depends_on`).
    pub runtime: bool,
}

#[derive(Debug, Default)]
pub struct PlanBuilder {
    graph: DiGraph<Name, EdgeKinds>,
    nodes: BTreeMap<Name, NodeIndex>,
}

impl PlanBuilder {
    pub fn node(&mut self, name: &Name) -> NodeIndex {
        if let Some(&n) = self.nodes.get(name) {
            return n;
        }
        let n = self.graph.add_node(name.clone());
        self.nodes.insert(name.clone(), n);
        n
    }

    /// Adds (or merges into) the edge `from` needs `to`.
    pub fn edge(&mut self, from: &Name, to: &Name, kinds: EdgeKinds) {
        let (a, b) = (self.node(from), self.node(to));
        match self.graph.find_edge(a, b) {
            Some(e) => {
                let w = &mut self.graph[e];
                w.build |= kinds.build;
                w.runtime |= kinds.runtime;
            }
            None => {
                self.graph.add_edge(a, b, kinds);
            }
        }
    }

    /// Refuses cycles, then fixes the waves.
    pub fn seal(self) -> Result<Plan, Vec<Cycle>> {
        // toposort finds whether there is a cycle (self-loops included) in one pass; only then is
        // the costlier search that names every cycle whole worth running.
        let Ok(order) = toposort(&self.graph, None) else {
            return Err(self.cycles());
        };
        // toposort puts a node before what it needs; walk it backwards so needs come first.
        let mut wave_of = vec![0usize; self.graph.node_count()];
        for &n in order.iter().rev() {
            wave_of[n.index()] = self
                .graph
                .neighbors_directed(n, Direction::Outgoing)
                .map(|d| wave_of[d.index()] + 1)
                .max()
                .unwrap_or(0);
        }
        let mut waves: Vec<Vec<Name>> = Vec::new();
        for (name, &n) in &self.nodes {
            let w = wave_of[n.index()];
            if waves.len() <= w {
                waves.resize_with(w + 1, Vec::new);
            }
            waves[w].push(name.clone());
        }
        Ok(Plan {
            graph: self.graph,
            nodes: self.nodes,
            waves,
        })
    }

    fn sorted_needs(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(n, Direction::Outgoing)
            .collect();
        v.sort_by(|a, b| self.graph[*a].cmp(&self.graph[*b]));
        v
    }

    /// One cycle per strongly connected component: the shortest cycle through the component's
    /// smallest name, so the report is the same for the same graph.
    fn cycles(&self) -> Vec<Cycle> {
        let mut cycles = Vec::new();
        for scc in tarjan_scc(&self.graph) {
            let start = *scc
                .iter()
                .min_by(|a, b| self.graph[**a].cmp(&self.graph[**b]))
                .expect("non-empty");
            if scc.len() == 1 && self.graph.find_edge(start, start).is_none() {
                continue;
            }
            let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
            // Breadth-first from `start` back to `start`, inside the component.
            let mut parent: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
            let mut queue = VecDeque::from([start]);
            let mut closing = None;
            'search: while let Some(n) = queue.pop_front() {
                for d in self.sorted_needs(n) {
                    if d == start {
                        closing = Some(n);
                        break 'search;
                    }
                    if members.contains(&d) && !parent.contains_key(&d) {
                        parent.insert(d, n);
                        queue.push_back(d);
                    }
                }
            }
            let mut path = vec![closing.expect("a strongly connected component has a cycle")];
            while let Some(&p) = parent.get(path.last().expect("non-empty")) {
                path.push(p);
            }
            if *path.last().expect("non-empty") != start {
                path.push(start);
            }
            path.reverse();
            let steps = path
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let next = path.get(i + 1).copied().unwrap_or(start);
                    let kinds = self.graph[self.graph.find_edge(n, next).expect("edge on cycle")];
                    (self.graph[n].clone(), kinds)
                })
                .collect();
            cycles.push(Cycle { steps });
        }
        cycles.sort_by(|a, b| a.steps[0].0.cmp(&b.steps[0].0));
        cycles
    }
}

/// A dependency cycle: each step is a container and why it needs the next (the last needs the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub steps: Vec<(Name, EdgeKinds)>,
}

impl Cycle {
    /// `a → b → c → a`.
    pub fn chain(&self) -> String {
        let mut s: Vec<&str> = self.steps.iter().map(|(n, _)| n.as_str()).collect();
        s.push(self.steps[0].0.as_str());
        s.join(" → ")
    }

    /// The edge to suggest cutting: a runtime edge if there is one (reordering a deploy is cheaper
    /// than changing what an image is built FROM), the last such edge for a stable answer.
    fn edge_to_cut(&self) -> (&Name, &Name, EdgeKinds) {
        let n = self.steps.len();
        let i = (0..n)
            .rev()
            .find(|&i| self.steps[i].1.runtime)
            .unwrap_or(n - 1);
        (
            &self.steps[i].0,
            &self.steps[(i + 1) % n].0,
            self.steps[i].1,
        )
    }

    pub fn diagnostic(&self) -> Diagnostic {
        let (from, to, kinds) = self.edge_to_cut();
        let edges: Vec<String> = (0..self.steps.len())
            .map(|i| {
                let (a, k) = &self.steps[i];
                let b = &self.steps[(i + 1) % self.steps.len()].0;
                let why = match (k.build, k.runtime) {
                    (true, true) => "built FROM and depends_on",
                    (true, false) => "built FROM",
                    _ => "depends_on",
                };
                format!("{a} → {b} ({why})")
            })
            .collect();
        let at = pointer_push("/containers", from.as_str());
        let (pointer, cut) = if kinds.runtime {
            (
                pointer_push(&at, "depends_on"),
                format!("remove `{to}` from `{from}`'s depends_on"),
            )
        } else {
            (
                pointer_push(&at, "base_image"),
                format!("build `{from}` FROM something other than `container:{to}`"),
            )
        };
        Diagnostic::new(
            "plan/cycle",
            pointer,
            format!("dependency cycle: {}", self.chain()),
        )
        .with_help(format!("edges: {}; to break it, {cut}", edges.join(", ")))
    }
}

/// The sealed plan.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    graph: DiGraph<Name, EdgeKinds>,
    nodes: BTreeMap<Name, NodeIndex>,
    waves: Vec<Vec<Name>>,
}

impl Plan {
    /// Builds the plan of a cookbook's containers and checks `build_order` against it. References
    /// were resolved by the model, so every edge's ends exist.
    pub(crate) fn build(
        containers: &BTreeMap<Name, Container>,
        build_order: &[Name],
    ) -> (Plan, Vec<Diagnostic>) {
        let mut builder = PlanBuilder::default();
        for (name, c) in containers {
            builder.node(name);
            for dep in &c.depends_on {
                builder.edge(
                    name,
                    dep,
                    EdgeKinds {
                        build: false,
                        runtime: true,
                    },
                );
            }
            if let Some(parent) = c.build_parent() {
                builder.edge(
                    name,
                    parent,
                    EdgeKinds {
                        build: true,
                        runtime: false,
                    },
                );
            }
        }
        match builder.seal() {
            Ok(plan) => {
                let diagnostics = plan.check_build_order(build_order);
                (plan, diagnostics)
            }
            Err(cycles) => (
                Plan::default(),
                cycles.iter().map(Cycle::diagnostic).collect(),
            ),
        }
    }

    /// `packaging.build_order` may list containers in any order the graph allows; a container
    /// listed before one it needs is a contradiction, reported with the pair. Each container's
    /// direct needs listed after it are reported, and its latest-listed need reached through
    /// others: with worker → api → db and `[worker, api, db]`, worker/api, worker/db and api/db.
    /// Reporting only the latest need would hide worker/api behind the others.
    fn check_build_order(&self, build_order: &[Name]) -> Vec<Diagnostic> {
        // Indexed by node rather than keyed by name: this runs over every edge of a cookbook of
        // any size, and string comparisons in a map dominated it.
        let mut position: Vec<Option<usize>> = vec![None; self.graph.node_count()];
        for (i, name) in build_order.iter().enumerate() {
            if let Some(&n) = self.nodes.get(name) {
                position[n.index()] = Some(i);
            }
        }
        // For each container, the latest-listed container it needs, directly or not.
        let mut latest_need: Vec<Option<(usize, NodeIndex)>> = vec![None; self.graph.node_count()];
        let mut diagnostics = Vec::new();
        let mut contradiction = |name: &Name, p: usize, needed: &Name| {
            diagnostics.push(
                Diagnostic::new(
                    "plan/build-order",
                    format!("/packaging/build_order/{p}"),
                    format!("build_order puts `{name}` before `{needed}`, but `{name}` needs `{needed}`"),
                )
                .with_help(format!("move `{needed}` before `{name}` in build_order")),
            );
        };
        for name in self.order() {
            let n = self.nodes[name];
            let p = position[n.index()];
            let mut best: Option<(usize, NodeIndex)> = None;
            for d in self.graph.neighbors_directed(n, Direction::Outgoing) {
                if let (Some(p), Some(q)) = (p, position[d.index()]) {
                    if p < q {
                        contradiction(name, p, &self.graph[d]);
                    }
                }
                let cands = [position[d.index()].map(|p| (p, d)), latest_need[d.index()]];
                for c in cands.into_iter().flatten() {
                    if best.is_none_or(|b| c.0 > b.0) {
                        best = Some(c);
                    }
                }
            }
            if let Some((b_pos, b_node)) = best {
                latest_need[n.index()] = best;
                // A direct need was reported above.
                let direct = self.graph.contains_edge(n, b_node);
                if let Some(p) = p {
                    if p < b_pos && !direct {
                        contradiction(name, p, &self.graph[b_node]);
                    }
                }
            }
        }
        diagnostics
    }

    /// The waves, bottom-up: every container's needs are in earlier waves.
    pub fn waves(&self) -> &[Vec<Name>] {
        &self.waves
    }

    /// Every container, bottom-up, wave by wave.
    pub fn order(&self) -> impl Iterator<Item = &Name> {
        self.waves.iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// What a container needs, sorted by name.
    pub fn needs(&self, name: &str) -> Vec<(&Name, EdgeKinds)> {
        let Some(&n) = self.nodes.get(name) else {
            return Vec::new();
        };
        let mut v: Vec<(&Name, EdgeKinds)> = self
            .graph
            .edges_directed(n, Direction::Outgoing)
            .map(|e| (&self.graph[e.target()], *e.weight()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// The plan of `roots` and everything they need, transitively.
    pub fn restrict<'a>(&self, roots: impl IntoIterator<Item = &'a Name>) -> Plan {
        let mut keep: BTreeSet<NodeIndex> = BTreeSet::new();
        let mut stack: Vec<NodeIndex> = roots
            .into_iter()
            .filter_map(|r| self.nodes.get(r).copied())
            .collect();
        while let Some(n) = stack.pop() {
            if keep.insert(n) {
                stack.extend(self.graph.neighbors_directed(n, Direction::Outgoing));
            }
        }
        let mut builder = PlanBuilder::default();
        for &n in &keep {
            builder.node(&self.graph[n]);
            for e in self.graph.edges_directed(n, Direction::Outgoing) {
                builder.edge(&self.graph[n], &self.graph[e.target()], *e.weight());
            }
        }
        builder.seal().expect("a subgraph of a DAG is a DAG")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    const RUN: EdgeKinds = EdgeKinds {
        build: false,
        runtime: true,
    };
    const BUILD: EdgeKinds = EdgeKinds {
        build: true,
        runtime: false,
    };

    #[test]
    fn waves_are_bottom_up_and_sorted() {
        let mut b = PlanBuilder::default();
        b.edge(&n("web"), &n("api"), RUN);
        b.edge(&n("api"), &n("db"), RUN);
        b.edge(&n("worker"), &n("api"), BUILD);
        b.node(&n("cache"));
        let plan = b.seal().unwrap();
        let waves: Vec<Vec<&str>> = plan
            .waves()
            .iter()
            .map(|w| w.iter().map(Name::as_str).collect())
            .collect();
        assert_eq!(
            waves,
            vec![vec!["cache", "db"], vec!["api"], vec!["web", "worker"]]
        );
    }

    #[test]
    fn merges_duplicate_edges() {
        let mut b = PlanBuilder::default();
        b.edge(&n("a"), &n("b"), RUN);
        b.edge(&n("a"), &n("b"), BUILD);
        b.edge(&n("a"), &n("b"), RUN);
        let plan = b.seal().unwrap();
        assert_eq!(
            plan.needs("a"),
            vec![(
                &n("b"),
                EdgeKinds {
                    build: true,
                    runtime: true
                }
            )]
        );
    }

    #[test]
    fn names_whole_cycles_through_either_kind() {
        let mut b = PlanBuilder::default();
        b.edge(&n("a"), &n("b"), RUN);
        b.edge(&n("b"), &n("c"), BUILD);
        b.edge(&n("c"), &n("a"), RUN);
        b.edge(&n("x"), &n("x"), RUN);
        b.edge(&n("ok"), &n("a"), RUN);
        let cycles = b.seal().unwrap_err();
        let chains: Vec<String> = cycles.iter().map(Cycle::chain).collect();
        assert_eq!(chains, ["a → b → c → a", "x → x"]);
        let d = cycles[0].diagnostic();
        assert_eq!(d.pointer, "/containers/c/depends_on");
        assert_eq!(
            d.help.as_deref(),
            Some("edges: a → b (depends_on), b → c (built FROM), c → a (depends_on); to break it, remove `a` from `c`'s depends_on")
        );
    }

    #[test]
    fn restrict_keeps_transitive_needs() {
        let mut b = PlanBuilder::default();
        b.edge(&n("web"), &n("api"), RUN);
        b.edge(&n("api"), &n("db"), RUN);
        b.node(&n("other"));
        let plan = b.seal().unwrap().restrict([&n("api")]);
        let all: Vec<&str> = plan.order().map(Name::as_str).collect();
        assert_eq!(all, ["db", "api"]);
    }
}
