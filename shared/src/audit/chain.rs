//! The chain: every audit record carries the hash of the record before it, and the store
//! advances one chain head in the same transaction as the record (see
//! [`crate::adapters::dynamodb`]), so there is one chain however many writers race.
//!
//! The hash rule: SHA-256, as lowercase hex, of the record's canonical JSON without its
//! `hash` field. Canonical JSON here is RFC 8785 (JCS) as it applies to our records, which
//! hold only strings, integers, booleans, arrays and objects: object keys sorted, no
//! whitespace, strings escaped as JSON requires (quote, backslash, control characters as
//! `\b \t \n \f \r` or `\u00xx`), everything else literal UTF-8. The hash is computed over
//! the JSON value as stored or shipped, not over a re-serialization of [`AuditRecord`], so a
//! field added to a shipped record changes its hash like any other edit.
//!
//! A [`Checkpoint`] is the head at one moment, signed with a KMS asymmetric key. The shipper
//! writes one after every batch it ships; the verifier checks the chain against them, which
//! catches a rewrite that recomputed every hash after the edited record.

use super::AuditRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record of the chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The schema identifier of checkpoints.
pub const CHECKPOINT_SCHEMA: &str = "pim.audit-checkpoint/1";

/// The signing algorithm of checkpoints, as KMS names it.
pub const CHECKPOINT_ALGORITHM: &str = "ECDSA_SHA_256";

/// The newest record of the chain: its sequence and hash. Sequence 0 is the empty chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The sequence of the newest record (0 when there is none).
    pub sequence: u64,
    /// Its hash ([`GENESIS_HASH`] when there is none).
    pub hash: String,
}

impl ChainHead {
    /// The head of a chain without records.
    pub fn genesis() -> Self {
        Self { sequence: 0, hash: GENESIS_HASH.into() }
    }
}

/// Writes `value` as canonical JSON (see the module docs) into `out`.
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The canonical JSON of `value`.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// The hash of a record given as a JSON value: SHA-256 hex of its canonical JSON without
/// the `hash` field.
pub fn hash_of(record: &Value) -> String {
    let mut unhashed = record.clone();
    if let Value::Object(map) = &mut unhashed {
        map.remove("hash");
    }
    hex(&Sha256::digest(canonical(&unhashed).as_bytes()))
}

/// Places `record` after `head`: sets its sequence, previous hash and hash. Returns the
/// sealed record and the head it makes.
pub fn seal(mut record: AuditRecord, head: &ChainHead) -> (AuditRecord, ChainHead) {
    record.sequence = head.sequence + 1;
    record.prev_hash = head.hash.clone();
    record.hash = String::new();
    let value = serde_json::to_value(&record).expect("records serialize");
    record.hash = hash_of(&value);
    let next = ChainHead { sequence: record.sequence, hash: record.hash.clone() };
    (record, next)
}

/// The chain head at one moment, signed by the shipper with a KMS asymmetric key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Always [`CHECKPOINT_SCHEMA`].
    pub schema: String,
    /// The sequence of the newest record it covers.
    pub sequence: u64,
    /// That record's hash.
    pub hash: String,
    /// When it was signed, UTC.
    pub time: chrono::DateTime<chrono::Utc>,
    /// The KMS key that signed it.
    pub key_id: String,
    /// The signing algorithm ([`CHECKPOINT_ALGORITHM`]).
    pub algorithm: String,
    /// The signature over [`Checkpoint::signed_message`], base64.
    #[serde(default)]
    pub signature: String,
}

impl Checkpoint {
    /// An unsigned checkpoint of `head`.
    pub fn of(head: &ChainHead, key_id: &str, time: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            schema: CHECKPOINT_SCHEMA.into(),
            sequence: head.sequence,
            hash: head.hash.clone(),
            time,
            key_id: key_id.into(),
            algorithm: CHECKPOINT_ALGORITHM.into(),
            signature: String::new(),
        }
    }

    /// The bytes the signature covers: the canonical JSON of every field but `signature`.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut value = serde_json::to_value(self).expect("checkpoints serialize");
        if let Value::Object(map) = &mut value {
            map.remove("signature");
        }
        canonical(&value).into_bytes()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, AuditAction, Outcome, Source};
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_and_escapes_control_characters() {
        let value = json!({"b": [1, {"z": true, "a": null}], "a": "tab\there\u{1b}"});
        assert_eq!(canonical(&value), r#"{"a":"tab\there\u001b","b":[1,{"a":null,"z":true}]}"#);
    }

    #[test]
    fn sealing_links_records_and_any_change_breaks_the_hash() {
        let time = "2026-12-03T10:00:00Z".parse().unwrap();
        let record = || {
            AuditRecord::new(
                AuditAction::RequestCancelled,
                Outcome::Success,
                Actor::system("grant"),
                Source::Api,
                time,
            )
        };
        let (first, head) = seal(record(), &ChainHead::genesis());
        let (second, head) = seal(record(), &head);
        assert_eq!((first.sequence, first.prev_hash.as_str()), (1, GENESIS_HASH));
        assert_eq!((second.sequence, &second.prev_hash), (2, &first.hash));
        assert_eq!(head.hash, second.hash);

        let stored = serde_json::to_value(&second).unwrap();
        assert_eq!(hash_of(&stored), second.hash);
        let mut edited = stored.clone();
        edited["outcome"] = json!("refused");
        assert_ne!(hash_of(&edited), second.hash);
        let mut added = stored;
        added["note"] = json!("x");
        assert_ne!(hash_of(&added), second.hash);
    }
}
