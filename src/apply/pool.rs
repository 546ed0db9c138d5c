//! The pool of builders: which engine builds which container.
//!
//! Pipeline position: inside the waves (`run`): a container that has to be built by an engine
//! asks the pool for a slot ([`Pool::acquire`]), builds on that slot's engine, and gives it back
//! when it is done (the [`Slot`] is dropped). A run with one engine has a pool of one, unnamed:
//! today's behaviour, and reports name no builder.
//!
//! The rule ([`choose`], pure): `jobs` builds at once *per builder*; a child goes to the builder
//! that built its parent (its image is there) when that one has a free slot; otherwise to the
//! least busy builder that answers: fewest builds running, then fewest assigned so far in this
//! run, then pool order — so the same state always gives the same choice. A child on another
//! builder pulls its parent by its content tag from the registry (`container.rs`,
//! `ensure_local`): the builders meet in the registry, which is why a named pool needs a run
//! that pushes (see `mod.rs`).
//!
//! A builder that stops answering is marked down ([`Pool::mark_down`]): it gets nothing more,
//! and its waiting builds go elsewhere. When every builder is down, [`Pool::acquire`] answers
//! `None` and the run fails as a run without an engine does (exit 3).

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::model::Name;

/// One engine of the pool.
#[derive(Debug)]
pub struct Builder<E> {
    /// What reports call it: the name written (`packaging.builders`), else the context's name or
    /// the host (`--builder`). `None`: the one engine of a run without a pool.
    pub name: Option<String>,
    pub engine: E,
}

/// What the scheduler knows of one builder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    /// Builds running on it now.
    pub running: usize,
    /// Builds given to it so far in this run.
    pub assigned: usize,
    /// Why it was left out, when it stopped answering.
    pub down: Option<String>,
}

/// The builder a build goes to, or `None` when none has a free slot (or none answers): the
/// parent's builder (`preferred`) when it answers and has a free slot, else the least busy one
/// with a free slot (fewest running, then fewest assigned, then pool order).
pub fn choose(loads: &[Load], jobs: usize, preferred: Option<usize>) -> Option<usize> {
    let free = |i: usize| loads[i].down.is_none() && loads[i].running < jobs.max(1);
    if let Some(p) = preferred.filter(|&p| p < loads.len() && free(p)) {
        return Some(p);
    }
    (0..loads.len())
        .filter(|&i| free(i))
        .min_by_key(|&i| (loads[i].running, loads[i].assigned, i))
}

/// The builders of a run and how busy each is.
#[derive(Debug)]
pub struct Pool<E> {
    builders: Vec<Builder<E>>,
    jobs: usize,
    state: Mutex<State>,
    /// Told whenever a slot frees or a builder goes down.
    changed: Notify,
}

#[derive(Debug)]
struct State {
    loads: Vec<Load>,
    /// Which builder built each container this run (a child prefers it).
    built: BTreeMap<Name, usize>,
}

impl<E> Pool<E> {
    /// A pool of `builders` (at least one), `jobs` builds at once on each.
    pub fn new(builders: Vec<Builder<E>>, jobs: usize) -> Pool<E> {
        assert!(!builders.is_empty(), "a pool has at least one builder");
        let loads = vec![Load::default(); builders.len()];
        Pool {
            builders,
            jobs: jobs.max(1),
            state: Mutex::new(State {
                loads,
                built: BTreeMap::new(),
            }),
            changed: Notify::new(),
        }
    }

    /// The one engine of a run without a pool.
    pub fn single(engine: E, jobs: usize) -> Pool<E> {
        Pool::new(vec![Builder { name: None, engine }], jobs)
    }

    /// Whether builds are spread over named builders (else: one engine, reports name none).
    pub fn is_named(&self) -> bool {
        self.builders.iter().any(|b| b.name.is_some())
    }

    pub fn builders(&self) -> &[Builder<E>] {
        &self.builders
    }

    /// Builds that may run at once over the whole pool.
    pub fn capacity(&self) -> usize {
        self.jobs * self.builders.len()
    }

    /// The first builder that still answers: what the run's other engine work (lookups without
    /// a registry, tags, reading a cached image to attest it) goes to.
    pub fn first(&self) -> &E {
        &self.builders[self.first_index()].engine
    }

    /// The index of [`Pool::first`]'s builder.
    pub fn first_index(&self) -> usize {
        let state = self.state.lock().expect("never poisoned");
        state
            .loads
            .iter()
            .position(|l| l.down.is_none())
            .unwrap_or(0)
    }

    /// The builder that built `name` in this run, if any.
    pub fn built(&self, name: &Name) -> Option<usize> {
        self.state
            .lock()
            .expect("never poisoned")
            .built
            .get(name)
            .copied()
    }

    /// Records that `name` was built on `slot`'s builder (its children prefer it).
    pub fn record_built(&self, name: &Name, slot: &Slot<'_, E>) {
        self.state
            .lock()
            .expect("never poisoned")
            .built
            .insert(name.clone(), slot.index);
    }

    /// Leaves builder `index` out of the rest of the run.
    pub fn mark_down(&self, index: usize, why: String) {
        let mut state = self.state.lock().expect("never poisoned");
        state.loads[index].down.get_or_insert(why);
        drop(state);
        self.changed.notify_waiters();
    }

    /// Why no builder answers (the first one's reason), when none does.
    pub fn all_down(&self) -> Option<String> {
        let state = self.state.lock().expect("never poisoned");
        if state.loads.iter().all(|l| l.down.is_some()) {
            state.loads[0].down.clone()
        } else {
            None
        }
    }

    /// A slot on the builder [`choose`] picks, waiting until one frees; `None` when every
    /// builder is down.
    pub async fn acquire(&self, preferred: Option<usize>) -> Option<Slot<'_, E>> {
        loop {
            // Registered before looking, so that a slot freed in between wakes this one.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.state.lock().expect("never poisoned");
                if state.loads.iter().all(|l| l.down.is_some()) {
                    return None;
                }
                if let Some(index) = choose(&state.loads, self.jobs, preferred) {
                    state.loads[index].running += 1;
                    state.loads[index].assigned += 1;
                    return Some(Slot { pool: self, index });
                }
            }
            changed.await;
        }
    }
}

/// A build's place on one builder, given back when dropped.
#[derive(Debug)]
pub struct Slot<'p, E> {
    pool: &'p Pool<E>,
    index: usize,
}

impl<E> Slot<'_, E> {
    pub fn engine(&self) -> &E {
        &self.pool.builders[self.index].engine
    }

    /// The builder's name (`None` without a pool).
    pub fn name(&self) -> Option<&str> {
        self.pool.builders[self.index].name.as_deref()
    }

    pub fn index(&self) -> usize {
        self.index
    }
}

impl<E> Drop for Slot<'_, E> {
    fn drop(&mut self) {
        let mut state = self.pool.state.lock().expect("never poisoned");
        state.loads[self.index].running -= 1;
        drop(state);
        self.pool.changed.notify_waiters();
    }
}

/// What `apply --dry-run` says each build would go to: [`choose`] over the plan's waves as if
/// every build took the same time (a wave's builds fill the free slots in plan order; when all
/// are taken, the next builds start as they free, all at once). `waves`: the containers to
/// build, per wave, each with its parent; `down`: the builders that did not answer.
pub fn predict(
    down: &[bool],
    jobs: usize,
    waves: &[Vec<(Name, Option<Name>)>],
) -> BTreeMap<Name, usize> {
    let mut loads: Vec<Load> = down
        .iter()
        .map(|&d| Load {
            down: d.then(|| "down".to_owned()),
            ..Load::default()
        })
        .collect();
    let mut built = BTreeMap::new();
    for wave in waves {
        for load in &mut loads {
            load.running = 0;
        }
        for (name, parent) in wave {
            let preferred = parent.as_ref().and_then(|p| built.get(p).copied());
            let index = match choose(&loads, jobs, preferred) {
                Some(i) => i,
                None => {
                    // Every slot taken: the next round of the wave starts on freed slots.
                    for load in &mut loads {
                        load.running = 0;
                    }
                    match choose(&loads, jobs, preferred) {
                        Some(i) => i,
                        None => continue,
                    }
                }
            };
            loads[index].running += 1;
            loads[index].assigned += 1;
            built.insert(name.clone(), index);
        }
    }
    built
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(running: &[usize], assigned: &[usize]) -> Vec<Load> {
        running
            .iter()
            .zip(assigned)
            .map(|(&running, &assigned)| Load {
                running,
                assigned,
                down: None,
            })
            .collect()
    }

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    #[test]
    fn the_least_busy_builder_then_fewest_assigned_then_pool_order() {
        assert_eq!(choose(&loads(&[1, 0], &[1, 5]), 2, None), Some(1));
        assert_eq!(choose(&loads(&[1, 1], &[3, 2]), 2, None), Some(1));
        assert_eq!(choose(&loads(&[1, 1], &[2, 2]), 2, None), Some(0));
    }

    #[test]
    fn a_child_goes_to_its_parents_builder_while_it_has_a_free_slot() {
        assert_eq!(choose(&loads(&[1, 0], &[4, 0]), 2, Some(0)), Some(0));
        // Full: elsewhere.
        assert_eq!(choose(&loads(&[2, 0], &[4, 0]), 2, Some(0)), Some(1));
    }

    #[test]
    fn a_builder_that_is_down_or_full_gets_nothing() {
        let mut l = loads(&[0, 0], &[0, 9]);
        l[0].down = Some("gone".into());
        assert_eq!(choose(&l, 1, Some(0)), Some(1));
        l[1].running = 1;
        assert_eq!(choose(&l, 1, None), None);
        l[1].down = Some("gone".into());
        assert_eq!(choose(&l, 1, None), None);
    }

    #[tokio::test]
    async fn slots_are_given_back_and_waiters_woken() {
        let pool = Pool::new(
            vec![
                Builder {
                    name: Some("a".into()),
                    engine: 'a',
                },
                Builder {
                    name: Some("b".into()),
                    engine: 'b',
                },
            ],
            1,
        );
        let first = pool.acquire(None).await.unwrap();
        let second = pool.acquire(None).await.unwrap();
        assert_eq!((*first.engine(), *second.engine()), ('a', 'b'));
        let waiting = pool.acquire(Some(1));
        tokio::pin!(waiting);
        assert!(futures_util::poll!(waiting.as_mut()).is_pending());
        drop(first);
        // Its parent's builder is busy: the freed one takes it.
        let third = waiting.await.unwrap();
        assert_eq!(third.name(), Some("a"));
        pool.mark_down(0, "stopped".into());
        drop(third);
        pool.mark_down(1, "stopped".into());
        drop(second);
        assert!(pool.acquire(None).await.is_none());
    }

    #[test]
    fn a_prediction_fills_each_waves_slots_and_keeps_children_with_parents() {
        let waves = vec![
            vec![(name("a"), None), (name("b"), None), (name("c"), None)],
            vec![(name("d"), Some(name("c"))), (name("e"), Some(name("c")))],
        ];
        let got = predict(&[false, false], 1, &waves);
        // a → x, b → y, then both full: c to the one with fewest assigned, x (pool order).
        assert_eq!(got[&name("a")], 0);
        assert_eq!(got[&name("b")], 1);
        assert_eq!(got[&name("c")], 0);
        // d with its parent; e's parent's builder is full: elsewhere.
        assert_eq!(got[&name("d")], 0);
        assert_eq!(got[&name("e")], 1);
        // A builder down gets nothing.
        let got = predict(&[true, false], 1, &waves);
        assert!(got.values().all(|&i| i == 1));
    }
}
