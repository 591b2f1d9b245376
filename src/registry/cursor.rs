//! Every client's durable cursor, without I/O: how far into the event log it has received
//! everything it is owed.
//!
//! Writing one row per client per event would cost a write per delivery. Instead most
//! clients share the **floor**: a client without a row has received every event it is owed
//! below the floor. Rows exist only for clients that are behind it (a backlog, an unconfirmed
//! latest-state replay) or registered ahead of it. The cores report their lagging clients and
//! how far they have processed the event stream ([`CursorReport`]); the registry folds each
//! report in here and the next group commit writes what changed.
//!
//! Why this never skips an owed event: a core reports a client as caught up only when its
//! queue is empty, and then it has received everything below the core's position; the floor
//! is the lowest position of all cores, so a client without a row is never behind the floor,
//! and a row is dropped only once the floor has reached it. A report about a client whose
//! latest registration the core has not applied yet (its stamp) changes nothing of that client.

use std::collections::BTreeMap;

use hashbrown::{HashMap, HashSet};

use super::record::ClientId;

/// Where a client's cursor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resume {
    /// It has received every event it is owed with a sequence number below this one.
    pub from: u64,
    /// A latest-state replay for it was not confirmed delivered: after a restart it gets the
    /// latest states of its types from this sequence number on again. A run is delivered in
    /// sequence order, so the states below it were received; `None` when none is owed.
    pub states_from: Option<u64>,
}

impl Resume {
    /// A cursor at `from` owing no latest state.
    pub fn at(from: u64) -> Resume {
        Resume {
            from,
            states_from: None,
        }
    }
}

/// One client behind its core's position, as the core saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagging {
    /// The client.
    pub id: ClientId,
    /// The registration the core serves.
    pub generation: u64,
    /// The first event it is still owed; `None` when it owes none below the core's position
    /// (only latest states are queued): the registry puts it at that position, which for a
    /// core that has matched no event since a restart is where the recovery left it.
    pub first_owed: Option<u64>,
    /// The lowest sequence number among the latest states still queued for it (the next of
    /// each latest-state run, in flight included); `None` when none is.
    pub states_from: Option<u64>,
}

/// One core's account of its clients' cursors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorReport {
    /// The reporting core.
    pub core: usize,
    /// Client changes and events the core has applied since it started: a report covers a
    /// registration only once this has reached the registration's stamp.
    pub received: u64,
    /// One past the last event the core has matched against its clients; `None` before the
    /// first. Every client of the core not listed in `lagging` has received everything it is
    /// owed below it.
    pub position: Option<u64>,
    /// The clients with deliveries queued or a latest-state replay outstanding.
    pub lagging: Vec<Lagging>,
}

/// Where a client's registration went: the core that owns it, and that core's count of
/// received commands once the registration is among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatched {
    /// The owning core.
    pub core: usize,
    /// The core's command count including this change.
    pub stamp: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    resume: Resume,
    /// `None` until the change that wrote the row has been sent to a core.
    sent: Option<Dispatched>,
    /// Its core's last report covering it listed it as lagging.
    lagging: bool,
}

/// The cursor table: rows, the floor, and each core's last reported position.
#[derive(Debug, Default)]
pub(crate) struct Cursors {
    floor: u64,
    /// The next sequence number when the registry started: the recovery handed every client
    /// what it was owed below it, so a core that has matched no event since stands there.
    start: u64,
    rows: HashMap<ClientId, Row>,
    /// How many rows have each `from`: the lowest cursor without a scan.
    froms: BTreeMap<u64, usize>,
    positions: Vec<Option<u64>>,
    /// Each core's command count in its last report.
    received: Vec<u64>,
    dirty: HashSet<ClientId>,
    floor_dirty: bool,
    undo: HashMap<ClientId, Option<Row>>,
    undo_floor: Option<u64>,
    /// Clients already warned about as behind the retained log.
    warned_behind: HashSet<ClientId>,
}

impl Cursors {
    /// The table as stored: `floor` and the rows; `start` is the next sequence number.
    pub(crate) fn restore(
        floor: u64,
        start: u64,
        rows: impl IntoIterator<Item = (ClientId, Resume)>,
    ) -> Self {
        let mut cursors = Cursors {
            floor,
            start,
            ..Cursors::default()
        };
        for (id, resume) in rows {
            cursors.put(
                id,
                Some(Row {
                    resume,
                    sent: None,
                    lagging: false,
                }),
            );
        }
        cursors
    }

    /// The floor: clients without a row have everything owed below it.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// Where `id`'s cursor stands.
    pub(crate) fn resume(&self, id: ClientId) -> Resume {
        self.rows
            .get(&id)
            .map_or(Resume::at(self.floor), |row| row.resume)
    }

    /// The lowest cursor of all: log entries below it are owed to nobody.
    pub(crate) fn keep_from(&self) -> u64 {
        self.froms
            .keys()
            .next()
            .map_or(self.floor, |lowest| self.floor.min(*lowest))
    }

    /// Clients with a row.
    pub(crate) fn rows(&self) -> impl Iterator<Item = (ClientId, Resume)> + '_ {
        self.rows.iter().map(|(id, row)| (*id, row.resume))
    }

    /// A new registration of `id` at `from` (the next sequence number): it is owed nothing
    /// before. At the floor with no replay pending it needs no row of its own.
    pub(crate) fn registered(&mut self, id: ClientId, resume: Resume) {
        if resume.from == self.floor && resume.states_from.is_none() {
            self.remove(id);
        } else {
            self.set(id, resume);
        }
    }

    /// Sets `id`'s cursor outright (a restart's recovery, a registration ahead of the floor).
    pub(crate) fn set(&mut self, id: ClientId, resume: Resume) {
        self.write(
            id,
            Some(Row {
                resume,
                sent: None,
                lagging: false,
            }),
        );
    }

    /// A latest-state replay whose first state is `first` was queued for `id`: it is owed the
    /// states from there on, besides any still owed from an earlier run.
    pub(crate) fn states_queued(&mut self, id: ClientId, first: u64) {
        let old = self.resume(id);
        let resume = Resume {
            states_from: Some(old.states_from.map_or(first, |from| from.min(first))),
            ..old
        };
        self.set(id, resume);
    }

    /// `id` is no longer registered.
    pub(crate) fn remove(&mut self, id: ClientId) {
        if self.rows.contains_key(&id) {
            self.write(id, None);
        }
        self.warned_behind.remove(&id);
    }

    /// The change that set `id`'s row went to a core.
    pub(crate) fn dispatched(&mut self, id: ClientId, sent: Dispatched) {
        if let Some(row) = self.rows.get_mut(&id)
            && row.sent.is_none()
        {
            row.sent = Some(sent);
        }
    }

    /// Folds in a core's report. `current` says whether a generation is the client's current
    /// registration; `cores` is the number of cores.
    pub(crate) fn apply(
        &mut self,
        report: &CursorReport,
        cores: usize,
        current: impl Fn(ClientId, u64) -> bool,
    ) {
        let k = report.core;
        if self.positions.len() < cores {
            self.positions.resize(cores, None);
            self.received.resize(cores, 0);
        }
        if let Some(received) = self.received.get_mut(k) {
            *received = (*received).max(report.received);
        }
        // A core that has matched no event since the start is where the recovery left it.
        let position = report.position.unwrap_or(self.start);
        if let Some(slot) = self.positions.get_mut(k) {
            *slot = Some(slot.map_or(position, |p| p.max(position)));
        }
        let received = &self.received;
        let covered = |row: &Row| {
            row.sent
                .is_some_and(|sent| received.get(sent.core).is_some_and(|r| sent.stamp <= *r))
        };
        let mut listed = HashSet::with_capacity(report.lagging.len());
        let mut writes = Vec::new();
        for lagging in &report.lagging {
            listed.insert(lagging.id);
            let old = self.rows.get(&lagging.id);
            if !current(lagging.id, lagging.generation) || old.is_some_and(|row| !covered(row)) {
                continue;
            }
            // A cursor only moves forward.
            let from = old.map_or(self.floor, |row| row.resume.from);
            // A row the report creates is the report's own: later reports of this core cover it.
            let row = Row {
                resume: Resume {
                    from: lagging.first_owed.unwrap_or(position).max(from),
                    states_from: lagging.states_from,
                },
                sent: old
                    .and_then(|row| row.sent)
                    .or(Some(Dispatched { core: k, stamp: 0 })),
                lagging: true,
            };
            if old != Some(&row) {
                writes.push((lagging.id, Some(row)));
            }
        }
        let position = self.positions.get(k).copied().flatten();
        for (id, row) in &self.rows {
            let own = row.sent.is_some_and(|sent| sent.core == k);
            if !own || listed.contains(id) || !covered(row) {
                continue;
            }
            let caught_up = Row {
                resume: Resume::at(position.map_or(row.resume.from, |p| p.max(row.resume.from))),
                lagging: false,
                ..*row
            };
            if caught_up != *row {
                writes.push((*id, Some(caught_up)));
            }
        }
        for (id, row) in writes {
            self.write(id, row);
        }
        if self.positions.len() == cores
            && let Some(lowest) = self.positions.iter().copied().min().flatten()
            && lowest > self.floor
        {
            self.undo_floor.get_or_insert(self.floor);
            self.floor = lowest;
            self.floor_dirty = true;
        }
        let received = &self.received;
        let floor = self.floor;
        let passed: Vec<ClientId> = self
            .rows
            .iter()
            .filter(|(_, row)| {
                !row.lagging
                    && row.resume.states_from.is_none()
                    && row.resume.from <= floor
                    && row.sent.is_some_and(|sent| {
                        received.get(sent.core).is_some_and(|r| sent.stamp <= *r)
                    })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in passed {
            self.write(id, None);
        }
    }

    /// Clients whose cursor is below `oldest` and were not reported before: the log no longer
    /// holds everything they are owed.
    pub(crate) fn newly_behind(&mut self, oldest: u64) -> Vec<ClientId> {
        if self
            .froms
            .keys()
            .next()
            .is_none_or(|lowest| *lowest >= oldest)
        {
            return Vec::new();
        }
        let behind: Vec<ClientId> = self
            .rows
            .iter()
            .filter(|(id, row)| row.resume.from < oldest && !self.warned_behind.contains(*id))
            .map(|(id, _)| *id)
            .collect();
        self.warned_behind.extend(behind.iter().copied());
        behind
    }

    /// The rows to write (`Some`) or delete (`None`) and the floor if it moved, since the last call.
    pub(crate) fn take_dirty(&mut self) -> (Vec<(ClientId, Option<Resume>)>, Option<u64>) {
        let rows = self
            .dirty
            .drain()
            .map(|id| (id, self.rows.get(&id).map(|row| row.resume)))
            .collect();
        let floor = std::mem::take(&mut self.floor_dirty).then_some(self.floor);
        (rows, floor)
    }

    /// The last [`Cursors::take_dirty`] writes are durable.
    pub(crate) fn committed(&mut self) {
        self.undo.clear();
        self.undo_floor = None;
    }

    /// The last [`Cursors::take_dirty`] writes failed: restore the rows and the floor they
    /// changed, and write those keys again next time.
    pub(crate) fn rollback(&mut self) {
        for (id, old) in std::mem::take(&mut self.undo) {
            self.put(id, old);
            self.dirty.insert(id);
        }
        if let Some(floor) = self.undo_floor.take() {
            self.floor = floor;
            self.floor_dirty = true;
        }
    }

    fn write(&mut self, id: ClientId, row: Option<Row>) {
        let old = self.put(id, row);
        self.undo.entry(id).or_insert(old);
        self.dirty.insert(id);
    }

    /// Sets or removes `id`'s row, keeping [`Cursors::froms`] in step; returns the old row.
    fn put(&mut self, id: ClientId, row: Option<Row>) -> Option<Row> {
        if let Some(row) = &row {
            *self.froms.entry(row.resume.from).or_default() += 1;
        }
        let old = match row {
            Some(row) => self.rows.insert(id, row),
            None => self.rows.remove(&id),
        };
        if let Some(old) = &old
            && let Some(count) = self.froms.get_mut(&old.resume.from)
        {
            *count -= 1;
            if *count == 0 {
                self.froms.remove(&old.resume.from);
            }
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u8) -> ClientId {
        ClientId {
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, n)),
            port: 7000,
        }
    }

    fn report(
        core: usize,
        received: u64,
        position: u64,
        lagging: &[(ClientId, u64)],
    ) -> CursorReport {
        CursorReport {
            core,
            received,
            position: Some(position),
            lagging: lagging
                .iter()
                .map(|(id, from)| Lagging {
                    id: *id,
                    generation: 1,
                    first_owed: Some(*from),
                    states_from: None,
                })
                .collect(),
        }
    }

    #[test]
    fn the_floor_is_the_lowest_core_position_and_rows_go_once_it_passes_them() {
        let mut cursors = Cursors::restore(0, 0, []);
        cursors.apply(&report(0, 5, 10, &[(client(1), 4)]), 2, |_, _| true);
        assert_eq!(cursors.floor(), 0, "core 1 has not reported");
        assert_eq!(cursors.resume(client(1)).from, 4);
        cursors.apply(&report(1, 5, 8, &[]), 2, |_, _| true);
        assert_eq!(cursors.floor(), 8);
        assert_eq!(cursors.resume(client(1)).from, 4, "still behind the floor");
        assert_eq!(cursors.keep_from(), 4);
        cursors.apply(&report(0, 6, 12, &[]), 2, |_, _| true);
        assert_eq!(
            cursors.resume(client(1)).from,
            12,
            "caught up to core 0, ahead of the floor"
        );
        cursors.apply(&report(1, 6, 12, &[]), 2, |_, _| true);
        assert_eq!(cursors.floor(), 12);
        assert_eq!(cursors.rows().count(), 0, "the floor covers it now");
    }

    /// Found by the simulation (seed 9165249701907808159): after a restart, a core that had
    /// delivered a client's recovered backlog but matched no event yet, and then queued its
    /// ADD_EVENTS replay, reported it from 0 for "nothing owed"; the row kept the cursor of
    /// before the backlog, and the next restart sent the backlog again.
    #[test]
    fn a_client_owing_only_latest_states_after_a_restart_is_at_the_recovery_point() {
        let mut cursors = Cursors::restore(21, 29, [(client(1), Resume::at(25))]);
        cursors.dispatched(client(1), Dispatched { core: 0, stamp: 1 });
        let report = CursorReport {
            core: 0,
            received: 2,
            position: None,
            lagging: vec![Lagging {
                id: client(1),
                generation: 1,
                first_owed: None,
                states_from: Some(12),
            }],
        };
        cursors.apply(&report, 1, |_, _| true);
        assert_eq!(
            cursors.resume(client(1)),
            Resume {
                from: 29,
                states_from: Some(12)
            }
        );
    }

    #[test]
    fn a_report_before_the_core_applied_a_registration_leaves_its_row() {
        let mut cursors = Cursors::restore(0, 0, []);
        cursors.set(
            client(1),
            Resume {
                from: 20,
                states_from: Some(3),
            },
        );
        let owed = |cursors: &Cursors| cursors.resume(client(1)).states_from;
        cursors.apply(&report(0, 3, 25, &[]), 1, |_, _| true);
        assert_eq!(owed(&cursors), Some(3), "not sent yet");
        cursors.dispatched(client(1), Dispatched { core: 0, stamp: 4 });
        cursors.apply(&report(0, 3, 25, &[]), 1, |_, _| true);
        assert_eq!(owed(&cursors), Some(3), "not applied yet");
        cursors.apply(&report(0, 4, 25, &[]), 1, |_, _| true);
        assert_eq!(
            cursors.rows().count(),
            0,
            "applied and caught up: the floor covers it"
        );
        assert_eq!(cursors.floor(), 25);
    }

    #[test]
    fn states_owed_start_at_the_lowest_outstanding_state_and_follow_the_reports() {
        let mut cursors = Cursors::restore(0, 0, []);
        cursors.states_queued(client(1), 7);
        cursors.states_queued(client(1), 9);
        assert_eq!(
            cursors.resume(client(1)).states_from,
            Some(7),
            "the lower one"
        );
        cursors.states_queued(client(1), 4);
        assert_eq!(cursors.resume(client(1)).states_from, Some(4));
        cursors.dispatched(client(1), Dispatched { core: 0, stamp: 1 });
        let lagging = |states_from| CursorReport {
            core: 0,
            received: 1,
            position: Some(10),
            lagging: vec![Lagging {
                id: client(1),
                generation: 1,
                first_owed: None,
                states_from,
            }],
        };
        cursors.apply(&lagging(Some(8)), 1, |_, _| true);
        assert_eq!(
            cursors.resume(client(1)),
            Resume {
                from: 10,
                states_from: Some(8)
            },
            "the core delivered the states below 8"
        );
        cursors.apply(&report(0, 1, 10, &[]), 1, |_, _| true);
        assert_eq!(cursors.rows().count(), 0, "delivered: the floor covers it");
    }

    #[test]
    fn a_rollback_restores_rows_and_floor() {
        let mut cursors = Cursors::restore(5, 0, [(client(1), Resume::at(3))]);
        cursors.take_dirty();
        cursors.committed();
        cursors.apply(&report(0, 1, 9, &[]), 1, |_, _| true);
        cursors.remove(client(1));
        let (_, floor) = cursors.take_dirty();
        assert_eq!(floor, Some(9));
        cursors.rollback();
        assert_eq!(cursors.floor(), 5);
        assert_eq!(cursors.resume(client(1)).from, 3);
        let (rows, floor) = cursors.take_dirty();
        assert_eq!((rows.len(), floor), (1, Some(5)));
    }
}
