//! The verifier: reads the audit stream (or an export of it, one JSON document a line) and
//! reports the first missing, edited, reordered, inserted, truncated or forged record.
//!
//! What it checks, walking the lines in order:
//!
//! - each record's `hash` is the hash of its own content (else **edited**);
//! - sequences run 1, 2, 3, … and each `prev_hash` is the hash of the record before (a gap
//!   is **missing**, unless the skipped record comes later: **reordered**; a record that
//!   takes a sequence already taken, or does not link to its predecessor, is **inserted**);
//! - each checkpoint's signature verifies with the KMS key (else **forged**), and the
//!   record it names has the hash it signed (else **forged**: the chain was rewritten and
//!   every hash after the edit recomputed);
//! - every record is covered by a later checkpoint (else **unsigned**: anyone can append a
//!   well-formed record, only the shipper can sign);
//! - when the chain head from the table is given, the stream reaches it (else
//!   **truncated**). Without the head, cutting whole batches off the end, checkpoints
//!   included, cannot be seen from the stream alone.
//!
//! An identical repeat of a record already seen is a redelivery (the shipper ships at least
//! once) and is counted, not reported.

use super::chain::{CHECKPOINT_SCHEMA, ChainHead, Checkpoint, hash_of};
use crate::error::Result;
use crate::ports::CheckpointSigner;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The kind of the first problem found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A line is neither a record nor a checkpoint.
    Malformed,
    /// A record's content does not match its hash.
    Edited,
    /// A sequence is missing.
    Missing,
    /// A record comes before one it should follow.
    Reordered,
    /// A record is not part of the chain: it reuses a sequence or does not link.
    Inserted,
    /// A checkpoint's signature is invalid, or the chain disagrees with a signed checkpoint.
    Forged,
    /// Records at the end are not covered by any signed checkpoint.
    Unsigned,
    /// The stream ends before the chain head.
    Truncated,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What is wrong.
    pub kind: FindingKind,
    /// The line of the stream (from 1) where it shows.
    pub line: usize,
    /// The sequence concerned.
    pub sequence: Option<u64>,
    /// The id of the record concerned, when there is one.
    pub record_id: Option<String>,
    /// A sentence saying what is wrong.
    pub detail: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Records accepted into the chain, in order.
    pub records: u64,
    /// Checkpoints whose signature and hash verified.
    pub checkpoints: u64,
    /// Identical repeats skipped.
    pub redeliveries: u64,
    /// The newest record accepted.
    pub head: ChainHead,
    /// The first problem, if any.
    pub finding: Option<Finding>,
}

impl Report {
    /// Whether the stream verified.
    pub fn is_intact(&self) -> bool {
        self.finding.is_none()
    }
}

enum Entry {
    Record { value: Value, sequence: u64, prev: String, hash: String, id: Option<String> },
    Checkpoint(Checkpoint),
    Malformed(String),
}

fn parse(line: &str) -> Entry {
    let value: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(err) => return Entry::Malformed(format!("not JSON: {err}")),
    };
    if value["schema"] == CHECKPOINT_SCHEMA {
        return match serde_json::from_value(value) {
            Ok(checkpoint) => Entry::Checkpoint(checkpoint),
            Err(err) => Entry::Malformed(format!("unreadable checkpoint: {err}")),
        };
    }
    let (Some(sequence), Some(prev), Some(hash)) =
        (value["sequence"].as_u64(), value["prev_hash"].as_str(), value["hash"].as_str())
    else {
        return Entry::Malformed("a record without sequence, prev_hash or hash".into());
    };
    let (prev, hash) = (prev.to_string(), hash.to_string());
    let id = value["id"].as_str().map(str::to_string);
    Entry::Record { value, sequence, prev, hash, id }
}

/// Verifies the stream `lines` against the signatures `signer` checks and, when given, the
/// chain `head` read from the table.
pub async fn verify_stream(
    lines: &[String],
    signer: &dyn CheckpointSigner,
    head: Option<&ChainHead>,
) -> Result<Report> {
    let entries: Vec<Entry> = lines.iter().map(|line| parse(line)).collect();
    let mut walk = Walk::default();
    for (index, entry) in entries.iter().enumerate() {
        let found = match entry {
            Entry::Malformed(reason) => Some(walk.finding(FindingKind::Malformed, index, reason)),
            Entry::Record { .. } => walk.record(&entries, index),
            Entry::Checkpoint(checkpoint) => walk.checkpoint(checkpoint, index, signer).await?,
        };
        if found.is_some() {
            return Ok(walk.report(found));
        }
    }
    let found = walk.end(lines.len(), head);
    Ok(walk.report(found))
}

/// The state of a walk through the stream.
struct Walk {
    /// Hash and line of each accepted record, by sequence.
    accepted: BTreeMap<u64, (String, usize, Option<String>)>,
    head: ChainHead,
    signed_through: u64,
    checkpoints: u64,
    redeliveries: u64,
}

impl Default for Walk {
    fn default() -> Self {
        Self {
            accepted: BTreeMap::new(),
            head: ChainHead::genesis(),
            signed_through: 0,
            checkpoints: 0,
            redeliveries: 0,
        }
    }
}

impl Walk {
    fn finding(&self, kind: FindingKind, index: usize, detail: &str) -> Finding {
        Finding { kind, line: index + 1, sequence: None, record_id: None, detail: detail.into() }
    }

    fn report(&self, finding: Option<Finding>) -> Report {
        Report {
            records: self.accepted.len() as u64,
            checkpoints: self.checkpoints,
            redeliveries: self.redeliveries,
            head: self.head.clone(),
            finding,
        }
    }

    fn record(&mut self, entries: &[Entry], index: usize) -> Option<Finding> {
        let Entry::Record { value, sequence, prev, hash, id } = &entries[index] else {
            return None;
        };
        let (sequence, expected) = (*sequence, self.head.sequence + 1);
        let about = |kind: FindingKind, detail: String| Finding {
            kind,
            line: index + 1,
            sequence: Some(sequence),
            record_id: id.clone(),
            detail,
        };
        if hash_of(value) != *hash {
            return Some(about(
                FindingKind::Edited,
                format!("record {sequence} does not match its hash"),
            ));
        }
        if sequence == expected && *prev == self.head.hash {
            self.accepted.insert(sequence, (hash.clone(), index + 1, id.clone()));
            self.head = ChainHead { sequence, hash: hash.clone() };
            return None;
        }
        if sequence == expected {
            return Some(about(
                FindingKind::Inserted,
                format!("record {sequence} does not link to the record before it"),
            ));
        }
        if let Some((taken, line, taken_id)) = self.accepted.get(&sequence) {
            if taken == hash {
                self.redeliveries += 1;
                return None;
            }
            // Two records claim one sequence: the one the chain goes on from is genuine.
            let continues_here = entries[index + 1..].iter().any(|entry| {
                matches!(entry, Entry::Record { sequence: s, prev: p, .. }
                    if *s == sequence + 1 && p == hash)
            });
            let detail = format!("two different records claim sequence {sequence}");
            return Some(if continues_here {
                Finding {
                    kind: FindingKind::Inserted,
                    line: *line,
                    sequence: Some(sequence),
                    record_id: taken_id.clone(),
                    detail,
                }
            } else {
                about(FindingKind::Inserted, detail)
            });
        }
        let later = entries[index + 1..]
            .iter()
            .any(|entry| matches!(entry, Entry::Record { sequence: s, .. } if *s == expected));
        if later {
            Some(about(
                FindingKind::Reordered,
                format!("record {sequence} comes before record {expected}"),
            ))
        } else {
            let mut finding = about(
                FindingKind::Missing,
                format!("record {expected} is missing (the next is {sequence})"),
            );
            finding.sequence = Some(expected);
            Some(finding)
        }
    }

    async fn checkpoint(
        &mut self,
        checkpoint: &Checkpoint,
        index: usize,
        signer: &dyn CheckpointSigner,
    ) -> Result<Option<Finding>> {
        let at = |kind: FindingKind, detail: String| Finding {
            kind,
            line: index + 1,
            sequence: Some(checkpoint.sequence),
            record_id: None,
            detail,
        };
        let signature = STANDARD.decode(&checkpoint.signature).unwrap_or_default();
        let valid = !signature.is_empty()
            && signer.verify(&checkpoint.key_id, &checkpoint.signed_message(), &signature).await?;
        if !valid {
            let detail =
                format!("checkpoint of record {} has no valid signature", checkpoint.sequence);
            return Ok(Some(at(FindingKind::Forged, detail)));
        }
        let Some((hash, _, _)) = self.accepted.get(&checkpoint.sequence) else {
            let expected = self.head.sequence + 1;
            let detail = format!(
                "a signed checkpoint covers record {} but the stream has none after {}",
                checkpoint.sequence, self.head.sequence
            );
            let mut finding = at(FindingKind::Missing, detail);
            finding.sequence = Some(expected);
            return Ok(Some(finding));
        };
        if *hash != checkpoint.hash {
            // The records since the last good checkpoint were rewritten with fresh hashes.
            let first = self.signed_through + 1;
            let (line, id) = self
                .accepted
                .get(&first)
                .map(|(_, line, id)| (*line, id.clone()))
                .unwrap_or((index + 1, None));
            return Ok(Some(Finding {
                kind: FindingKind::Forged,
                line,
                sequence: Some(first),
                record_id: id,
                detail: format!(
                    "the chain differs from the signed checkpoint of record {}; the records \
                     from {first} on were rewritten",
                    checkpoint.sequence
                ),
            }));
        }
        self.signed_through = self.signed_through.max(checkpoint.sequence);
        self.checkpoints += 1;
        Ok(None)
    }

    fn end(&self, lines: usize, head: Option<&ChainHead>) -> Option<Finding> {
        if let Some(head) = head {
            if head.sequence > self.head.sequence {
                return Some(Finding {
                    kind: FindingKind::Truncated,
                    line: lines + 1,
                    sequence: Some(self.head.sequence + 1),
                    record_id: None,
                    detail: format!(
                        "the stream ends at record {} but the chain head is {}",
                        self.head.sequence, head.sequence
                    ),
                });
            }
            let held = self.accepted.get(&head.sequence).map(|(hash, _, _)| hash.as_str());
            if head.sequence > 0 && held != Some(head.hash.as_str()) {
                return Some(Finding {
                    kind: FindingKind::Forged,
                    line: lines,
                    sequence: Some(head.sequence),
                    record_id: None,
                    detail: format!("record {} differs from the chain head", head.sequence),
                });
            }
        }
        if self.head.sequence > self.signed_through {
            let first = self.signed_through + 1;
            let (_, line, id) = &self.accepted[&first];
            let (line, id) = (*line, id.clone());
            return Some(Finding {
                kind: FindingKind::Unsigned,
                line,
                sequence: Some(first),
                record_id: id,
                detail: format!(
                    "records {first} to {} are not covered by a signed checkpoint",
                    self.head.sequence
                ),
            });
        }
        None
    }
}
