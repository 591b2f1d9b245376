//! Which events a registration receives, and which events are the "same type" for latest state.

use crate::protocol::{Event, EventType, Text};

/// True when `event` is of registered type `t`: same class, same subclass if `t` names one,
/// and every pair of `t` present in the event with an equal value list.
pub fn matches(t: &EventType, event: &Event) -> bool {
    t.class == event.class
        && t.subclass.as_ref().is_none_or(|s| *s == event.subclass)
        && t.nvpairs.iter().all(|want| {
            event
                .nvpairs
                .iter()
                .any(|have| have.name == want.name && have.values == want.values)
        })
}

/// The concrete type an event is the latest state of: class, subclass, and the resource or
/// group it is about (`r_name`, `rg_name`) where it names one. One latest event is kept per key.
pub fn state_key(event: &Event) -> String {
    let subject = event
        .nvpairs
        .iter()
        .find(|p| p.name == "r_name" || p.name == "rg_name")
        .and_then(|p| p.values.first())
        .map_or("", Text::as_str);
    format!("{}\u{1f}{}\u{1f}{}", event.class, event.subclass, subject)
}

/// Types in canonical form (pairs sorted by name) with duplicates removed, first one kept;
/// linear in the number of types.
pub fn canonical_types(types: &[EventType]) -> Vec<EventType> {
    let mut seen: hashbrown::HashSet<EventType> = hashbrown::HashSet::with_capacity(types.len());
    let mut out: Vec<EventType> = Vec::with_capacity(types.len());
    for t in types {
        let mut t = t.clone();
        t.nvpairs.sort();
        t.nvpairs.dedup();
        if seen.insert(t.clone()) {
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NvPair;

    fn event(subclass: &str, pairs: &[(&str, &[&str])]) -> Event {
        Event {
            class: "EC_Cluster".into(),
            subclass: subclass.into(),
            vendor: "SUNW".into(),
            publisher: "rgm".into(),
            nvpairs: pairs
                .iter()
                .map(|(n, v)| NvPair {
                    name: (*n).into(),
                    values: v.iter().map(|s| (*s).into()).collect(),
                })
                .collect(),
        }
    }

    fn reg(subclass: Option<&str>, pairs: &[(&str, &str)]) -> EventType {
        EventType {
            class: "EC_Cluster".into(),
            subclass: subclass.map(Into::into),
            nvpairs: pairs.iter().map(|(n, v)| NvPair::scalar(*n, *v)).collect(),
        }
    }

    #[test]
    fn class_subclass_and_pairs_narrow_the_match() {
        let e = event(
            "ESC_cluster_rg_state",
            &[("rg_name", &["web"]), ("node_list", &["a", "b"])],
        );
        assert!(matches(&reg(None, &[]), &e));
        assert!(matches(
            &reg(Some("ESC_cluster_rg_state"), &[("rg_name", "web")]),
            &e
        ));
        assert!(!matches(
            &reg(Some("ESC_cluster_rg_state"), &[("rg_name", "db")]),
            &e
        ));
        assert!(!matches(&reg(Some("ESC_cluster_membership"), &[]), &e));
        assert!(!matches(
            &reg(Some("ESC_cluster_rg_state"), &[("node_list", "a")]),
            &e
        ));
        let other = EventType {
            class: "EC_Other".into(),
            subclass: None,
            nvpairs: vec![],
        };
        assert!(!matches(&other, &e));
    }

    #[test]
    fn state_key_separates_resources_and_groups() {
        let a = event("ESC_cluster_r_state", &[("r_name", &["a"])]);
        let b = event("ESC_cluster_r_state", &[("r_name", &["b"])]);
        let m = event("ESC_cluster_membership", &[("node_list", &["n1"])]);
        assert_ne!(state_key(&a), state_key(&b));
        assert_eq!(
            state_key(&m),
            state_key(&event("ESC_cluster_membership", &[]))
        );
    }

    #[test]
    fn canonical_types_drop_duplicates_whatever_the_pair_order() {
        let mut t1 = reg(Some("X"), &[("a", "1"), ("b", "2")]);
        let t2 = reg(Some("X"), &[("b", "2"), ("a", "1")]);
        let out = canonical_types(&[t1.clone(), t2, reg(None, &[])]);
        t1.nvpairs.sort();
        assert_eq!(out, vec![t1, reg(None, &[])]);
    }
}
