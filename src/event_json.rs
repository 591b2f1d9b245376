//! The JSON form of an event, used by the publish API and by `crnp subscribe --json`.
//!
//! `{"class","subclass","vendor","publisher","nvpairs":[{"name","value"}]}`, where `value` is a
//! string for a scalar pair or an array of strings for an array pair. `vendor` and `publisher`
//! default to `SUNW` and `rgm`, the values every cluster event carries.

use serde::{Deserialize, Serialize};

use crate::protocol::{Event, EventType, NvPair, Text};

/// Vendor of cluster events when a publisher does not name one.
pub const DEFAULT_VENDOR: &str = "SUNW";
/// Publisher of cluster events when a publisher does not name one.
pub const DEFAULT_PUBLISHER: &str = "rgm";

/// An event as JSON carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEvent {
    /// `CLASS`.
    pub class: Text,
    /// `SUBCLASS`.
    pub subclass: Text,
    /// `VENDOR`; defaults to [`DEFAULT_VENDOR`].
    #[serde(default = "default_vendor")]
    pub vendor: Text,
    /// `PUBLISHER`; defaults to [`DEFAULT_PUBLISHER`].
    #[serde(default = "default_publisher")]
    pub publisher: Text,
    /// The pairs, in order.
    #[serde(default)]
    pub nvpairs: Vec<JsonNvPair>,
}

/// One pair as JSON carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonNvPair {
    /// `NAME`.
    pub name: Text,
    /// One `VALUE` or several.
    pub value: JsonValue,
}

/// A scalar value or a string array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JsonValue {
    /// One `VALUE`.
    Scalar(Text),
    /// Several `VALUE`s, in order.
    Array(Vec<Text>),
}

/// A publish body: one event or a batch, published in array order.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum JsonBody {
    /// One event.
    One(JsonEvent),
    /// A batch.
    Many(Vec<JsonEvent>),
}

impl JsonBody {
    /// The events of the body, in publish order.
    pub fn into_events(self) -> Vec<Event> {
        match self {
            JsonBody::One(event) => vec![event.into()],
            JsonBody::Many(events) => events.into_iter().map(Event::from).collect(),
        }
    }
}

/// A registered event type as JSON shows it (admin API, store export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonEventType {
    /// `CLASS`.
    pub class: Text,
    /// `SUBCLASS`, absent for a class-wide registration.
    pub subclass: Option<Text>,
    /// The pairs that narrow it.
    pub nvpairs: Vec<JsonNvPair>,
}

impl From<&EventType> for JsonEventType {
    fn from(t: &EventType) -> Self {
        JsonEventType {
            class: t.class.clone(),
            subclass: t.subclass.clone(),
            nvpairs: t.nvpairs.iter().map(json_pair).collect(),
        }
    }
}

fn json_pair(pair: &NvPair) -> JsonNvPair {
    JsonNvPair {
        name: pair.name.clone(),
        value: match pair.values.as_slice() {
            [one] => JsonValue::Scalar(one.clone()),
            many => JsonValue::Array(many.to_vec()),
        },
    }
}

fn default_vendor() -> Text {
    Text::const_new(DEFAULT_VENDOR)
}

fn default_publisher() -> Text {
    Text::const_new(DEFAULT_PUBLISHER)
}

impl From<JsonEvent> for Event {
    fn from(json: JsonEvent) -> Self {
        Event {
            class: json.class,
            subclass: json.subclass,
            vendor: json.vendor,
            publisher: json.publisher,
            nvpairs: json
                .nvpairs
                .into_iter()
                .map(|pair| NvPair {
                    name: pair.name,
                    values: match pair.value {
                        JsonValue::Scalar(value) => vec![value],
                        JsonValue::Array(values) => values,
                    },
                })
                .collect(),
        }
    }
}

impl From<&Event> for JsonEvent {
    fn from(event: &Event) -> Self {
        JsonEvent {
            class: event.class.clone(),
            subclass: event.subclass.clone(),
            vendor: event.vendor.clone(),
            publisher: event.publisher.clone(),
            nvpairs: event.nvpairs.iter().map(json_pair).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_and_array_values_round_trip_through_event() {
        let body = r#"{"class":"EC_Cluster","subclass":"ESC_cluster_r_state",
            "nvpairs":[{"name":"r_name","value":"d1"},{"name":"node_list","value":["a","b"]}]}"#;
        let parsed: JsonBody = serde_json::from_str(body).expect("valid body");
        let events = parsed.into_events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].vendor, "SUNW");
        assert_eq!(events[0].nvpairs[1].values, vec!["a", "b"]);
        let back = JsonEvent::from(&events[0]);
        assert_eq!(back.nvpairs[0].value, JsonValue::Scalar("d1".into()));
        assert_eq!(Event::from(back), events[0]);
    }

    #[test]
    fn a_batch_keeps_its_order_and_unknown_fields_are_refused() {
        let batch = r#"[{"class":"A","subclass":"1"},{"class":"B","subclass":"2"}]"#;
        let events = serde_json::from_str::<JsonBody>(batch)
            .expect("valid")
            .into_events();
        assert_eq!(
            events.iter().map(|e| e.class.as_str()).collect::<Vec<_>>(),
            ["A", "B"]
        );
        assert!(serde_json::from_str::<JsonBody>(r#"{"class":"A","subclass":"1","x":1}"#).is_err());
    }
}
