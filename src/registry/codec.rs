//! The stored form of a client record.
//!
//! crnpd writes a compact binary form (first byte [`BINARY_V1`]); it still reads the JSON form
//! earlier versions wrote (first byte `{`), so a store keeps every client across an upgrade and
//! each record is rewritten in the binary form the next time its client changes.
//!
//! Binary form, version 1 (integers little-endian, `str` = `u32` byte length + UTF-8):
//!
//! ```text
//! u8 1 | u8 4 + 4 address bytes, or u8 6 + 16 | u16 port | u64 registered_at_ms
//! u32 types, each: str class | u8 0, or u8 1 + str subclass | u32 pairs,
//!                  each: str name | u32 values, each: str value
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::record::{ClientId, StoredClient};
use crate::protocol::{EventType, NvPair, Text};

/// First byte of the binary form, version 1.
const BINARY_V1: u8 = 1;

/// A client record as read back from the store.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Who it is.
    pub(crate) id: ClientId,
    /// What it registered for.
    pub(crate) types: Vec<EventType>,
    /// When it registered, in milliseconds since the Unix epoch.
    pub(crate) registered_at_ms: u64,
}

/// Appends the binary form of a client record to `out`.
pub(crate) fn encode(id: ClientId, types: &[EventType], registered_at_ms: u64, out: &mut Vec<u8>) {
    out.push(BINARY_V1);
    match id.ip {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&id.port.to_le_bytes());
    out.extend_from_slice(&registered_at_ms.to_le_bytes());
    put_len(out, types.len());
    for t in types {
        put_str(out, &t.class);
        match &t.subclass {
            Some(subclass) => {
                out.push(1);
                put_str(out, subclass);
            }
            None => out.push(0),
        }
        put_len(out, t.nvpairs.len());
        for pair in &t.nvpairs {
            put_str(out, &pair.name);
            put_len(out, pair.values.len());
            for value in &pair.values {
                put_str(out, value);
            }
        }
    }
}

/// Reads a stored client record in either form; the error says what is wrong with it.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    match bytes.first() {
        Some(&BINARY_V1) => decode_binary(&bytes[1..]),
        Some(b'{') => {
            let stored: StoredClient =
                serde_json::from_slice(bytes).map_err(|e| format!("JSON record: {e}"))?;
            let address = stored
                .address
                .as_deref()
                .ok_or("JSON record without an address")?;
            let id = address
                .parse()
                .map_err(|_| format!("bad client address {address:?}"))?;
            Ok(decode_json(id, stored))
        }
        Some(other) => Err(format!("unknown record format {other}")),
        None => Err("empty record".into()),
    }
}

/// A JSON record of the first store layout, whose key was the client's address.
pub(crate) fn decode_legacy(address: &str, bytes: &[u8]) -> Result<Decoded, String> {
    let id = address
        .parse()
        .map_err(|_| format!("bad client address {address:?}"))?;
    let stored: StoredClient =
        serde_json::from_slice(bytes).map_err(|e| format!("JSON record of {address}: {e}"))?;
    Ok(decode_json(id, stored))
}

fn decode_json(id: ClientId, stored: StoredClient) -> Decoded {
    Decoded {
        id,
        types: stored.types.into_iter().map(Into::into).collect(),
        registered_at_ms: stored.registered_at_ms,
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Lengths come from messages of at most --max-message-bytes (16 MiB at most): far below 4 GiB.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

fn decode_binary(bytes: &[u8]) -> Result<Decoded, String> {
    let mut input = Input { rest: bytes };
    let ip = match input.byte()? {
        4 => IpAddr::V4(Ipv4Addr::from(input.array::<4>()?)),
        6 => IpAddr::V6(Ipv6Addr::from(input.array::<16>()?)),
        other => return Err(format!("unknown address family {other}")),
    };
    let port = u16::from_le_bytes(input.array()?);
    let registered_at_ms = u64::from_le_bytes(input.array()?);
    let count = input.len()?;
    let mut types = Vec::with_capacity(count.min(input.rest.len()));
    for _ in 0..count {
        let class = input.string()?;
        let subclass = match input.byte()? {
            0 => None,
            1 => Some(input.string()?),
            other => return Err(format!("bad subclass flag {other}")),
        };
        let pairs = input.len()?;
        let mut nvpairs = Vec::with_capacity(pairs.min(input.rest.len()));
        for _ in 0..pairs {
            let name = input.string()?;
            let values = input.len()?;
            let mut texts = Vec::with_capacity(values.min(input.rest.len()));
            for _ in 0..values {
                texts.push(input.string()?);
            }
            nvpairs.push(NvPair {
                name,
                values: texts,
            });
        }
        types.push(EventType {
            class,
            subclass,
            nvpairs,
        });
    }
    if !input.rest.is_empty() {
        return Err(format!("{} bytes after the record", input.rest.len()));
    }
    Ok(Decoded {
        id: ClientId { ip, port },
        types,
        registered_at_ms,
    })
}

/// The unread part of a binary record; every read is bounds-checked.
struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.rest.len() {
            return Err(format!(
                "record truncated: {n} bytes wanted, {} left",
                self.rest.len()
            ));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn len(&mut self) -> Result<usize, String> {
        let len = u32::from_le_bytes(self.array()?);
        usize::try_from(len).map_err(|_| format!("length {len} too large"))
    }

    fn string(&mut self) -> Result<Text, String> {
        let len = self.len()?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(Text::from)
            .map_err(|_| "text that is not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Decoded {
        Decoded {
            id: ClientId {
                ip: "fe80::1".parse().expect("ip"),
                port: 7000,
            },
            types: vec![
                EventType::new("EC_Cluster", None, vec![]),
                EventType::new(
                    "EC_Cluster",
                    Some("ESC_cluster_rg_state"),
                    vec![
                        NvPair::scalar("rg_name", "web-rg"),
                        NvPair {
                            name: "node_list".into(),
                            values: vec!["a".into(), "b ü".into()],
                        },
                    ],
                ),
            ],
            registered_at_ms: 1_790_000_000_123,
        }
    }

    fn encoded(record: &Decoded) -> Vec<u8> {
        let mut out = Vec::new();
        encode(record.id, &record.types, record.registered_at_ms, &mut out);
        out
    }

    #[test]
    fn binary_records_round_trip() {
        let record = sample();
        assert_eq!(decode(&encoded(&record)), Ok(record));
        let v4 = Decoded {
            id: ClientId {
                ip: "127.0.0.9".parse().expect("ip"),
                port: 1,
            },
            types: vec![],
            registered_at_ms: 0,
        };
        assert_eq!(decode(&encoded(&v4)), Ok(v4));
    }

    #[test]
    fn every_truncation_and_extension_is_an_error_not_a_panic() {
        let bytes = encoded(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut huge = bytes;
        // The type count claims four billion types.
        huge[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }

    #[test]
    fn json_records_of_earlier_versions_are_read() {
        let slot_json = br#"{"address":"127.0.0.5:7001","types":[{"class":"EC_Cluster","subclass":"ESC_cluster_r_state","nvpairs":[["r_name",["a"]]]}],"registered_at_ms":5}"#;
        let record = decode(slot_json).expect("slot-keyed JSON");
        assert_eq!(record.id.to_string(), "127.0.0.5:7001");
        assert_eq!(record.types[0].nvpairs[0], NvPair::scalar("r_name", "a"));
        let legacy = br#"{"types":[{"class":"EC_Cluster","subclass":null,"nvpairs":[]}],"registered_at_ms":7}"#;
        let record = decode_legacy("127.0.0.6:7002", legacy).expect("address-keyed JSON");
        assert_eq!(
            (record.id.to_string(), record.registered_at_ms),
            ("127.0.0.6:7002".to_owned(), 7)
        );
        assert!(decode(b"\x07junk").is_err());
        assert!(decode(b"").is_err());
    }
}
