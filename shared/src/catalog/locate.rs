//! Where a field stands in the policy document, so every problem can name its line and
//! column. The document is walked once with a YAML event parser that reports positions, and
//! each key and sequence item is indexed by its path (`roles[0].approval[1].quorum`).

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A position in the document: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// The positions of every key and sequence item in a document, by path.
#[derive(Debug, Default, Clone)]
pub struct Locations {
    spots: HashMap<String, Position>,
}

impl Locations {
    /// Indexes `source`; a document the parser cannot read yields an empty index (the
    /// deserializer reports the syntax error with its own position).
    pub fn index(source: &str) -> Self {
        let mut indexer = Indexer::default();
        let mut parser = Parser::new_from_str(source);
        if parser.load(&mut indexer, false).is_err() {
            return Self::default();
        }
        Self { spots: indexer.spots }
    }

    /// Whether `path` itself is indexed (not only an ancestor of it).
    pub fn has(&self, path: &str) -> bool {
        self.spots.contains_key(path)
    }

    /// The position of `path`, or of its nearest indexed ancestor.
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut candidate = path.to_string();
        loop {
            if let Some(position) = self.spots.get(&candidate) {
                return Some(*position);
            }
            let cut = candidate.rfind(['.', '['])?;
            candidate.truncate(cut);
        }
    }
}

enum Frame {
    /// A mapping; `placed` is false for a sequence item whose position is that of its first key
    /// (the parser reports a block mapping's start after its first key).
    Map {
        path: String,
        key: Option<String>,
        placed: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    spots: HashMap<String, Position>,
}

fn position(mark: Marker) -> Position {
    Position { line: mark.line(), column: mark.col() + 1 }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

impl Indexer {
    /// The path of a node that starts now, or `None` when the node is a mapping key.
    fn place_node(&mut self, event: &Event, mark: Marker) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                if !matches!(event, Event::MappingStart(..)) {
                    self.spots.insert(item.clone(), position(mark));
                }
                Some(item)
            }
            Some(Frame::Map { path, key, placed }) => match key.take() {
                Some(key) => Some(join(path, &key)),
                None => {
                    let name = match event {
                        Event::Scalar(text, ..) => text.clone(),
                        _ => "?".to_string(),
                    };
                    if !*placed {
                        self.spots.insert(path.clone(), position(mark));
                        *placed = true;
                    }
                    self.spots.insert(join(path, &name), position(mark));
                    *key = Some(name);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match &event {
            Event::Scalar(..) | Event::Alias(..) => {
                self.place_node(&event, mark);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = self.place_node(&event, mark).unwrap_or_else(|| "?".into());
                let in_sequence = matches!(self.stack.last(), Some(Frame::Seq { .. }));
                let frame = match event {
                    Event::MappingStart(..) => Frame::Map { path, key: None, placed: !in_sequence },
                    _ => Frame::Seq { path, next: 0 },
                };
                self.stack.push(frame);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_items_are_found_by_path() {
        let source = "version: 1\nroles:\n  - name: a\n    approval:\n      - quorum: 2\n";
        let locations = Locations::index(source);
        assert_eq!(locations.find("version"), Some(Position { line: 1, column: 1 }));
        assert_eq!(locations.find("roles[0]"), Some(Position { line: 3, column: 5 }));
        assert_eq!(locations.find("roles[0].name"), Some(Position { line: 3, column: 5 }));
        assert_eq!(
            locations.find("roles[0].approval[0].quorum"),
            Some(Position { line: 5, column: 9 })
        );
        assert_eq!(
            locations.find("roles[0].approval[0].missing"),
            Some(Position { line: 5, column: 9 })
        );
    }
}
