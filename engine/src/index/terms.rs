//! What a record contributes to the index: one key per field value and per
//! word, each key being a [`Field`] code byte followed by the term's bytes.
//!
//! Words (API.md "Filters"): maximal runs of Unicode letters and digits,
//! lowercased, taken from `message`, `entity_name` and `actor`. `recorded_by`
//! is a field key only: key ids are not words a search should find.

use super::Field;

/// The index keys of a batch of records, packed into one buffer (one
/// allocation per batch, not two per record: this is on the append path).
#[derive(Debug, Default, Clone)]
pub struct Terms {
    buf: Vec<u8>,
    /// End of each key in `buf`.
    ends: Vec<u32>,
    /// End of each record's keys in `ends`.
    records: Vec<u32>,
}

/// The indexed fields of a record, borrowed from either a `NewRecord` or a `Record`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TermSource<'a> {
    pub category: &'a str,
    pub action: &'a str,
    pub actor: &'a str,
    pub entity_type: Option<&'a str>,
    pub entity_id: Option<&'a str>,
    pub entity_name: Option<&'a str>,
    pub message: &'a str,
    pub severity: &'a str,
    pub recorded_by: Option<&'a str>,
}

impl Terms {
    /// Room for `records` records of about `text_bytes` bytes of indexed text.
    pub(crate) fn with_capacity(records: usize, text_bytes: usize) -> Terms {
        Terms {
            // A key is its text plus a code byte; ~20-30 keys a record.
            buf: Vec::with_capacity(text_bytes + records * 32),
            ends: Vec::with_capacity(records * 32),
            records: Vec::with_capacity(records),
        }
    }

    /// The keys of one record.
    #[cfg(test)]
    pub(crate) fn of(src: TermSource<'_>) -> Terms {
        let mut t = Terms::with_capacity(1, src.text_len());
        t.add(src);
        t
    }

    /// Appends every key of one more record.
    pub(crate) fn add(&mut self, src: TermSource<'_>) {
        self.push(Field::Category.code(), src.category);
        self.push(Field::Action.code(), src.action);
        self.push(Field::Actor.code(), src.actor);
        if let Some(v) = src.entity_type {
            self.push(Field::EntityType.code(), v);
        }
        if let Some(v) = src.entity_id {
            self.push(Field::EntityId.code(), v);
        }
        self.push(Field::Severity.code(), src.severity);
        if let Some(v) = src.recorded_by {
            self.push(Field::RecordedBy.code(), v);
        }
        let mut word = String::new();
        for text in [Some(src.message), src.entity_name, Some(src.actor)]
            .into_iter()
            .flatten()
        {
            if text.is_ascii() {
                self.push_ascii_words(text.as_bytes());
            } else {
                for_each_unicode_word(text, &mut word, |w| self.push(super::WORD_CODE, w));
            }
        }
        self.records.push(self.ends.len() as u32);
    }

    /// Forgets every record (keeps the allocations).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
        self.records.clear();
    }

    /// [`for_each_word`] on ASCII text, writing each word straight into the
    /// buffer, lowercased: nearly every record takes this path.
    fn push_ascii_words(&mut self, text: &[u8]) {
        self.buf.reserve(text.len() * 2);
        let mut in_word = false;
        for &b in text {
            let lower = ASCII_WORD_BYTE[usize::from(b)];
            if lower != 0 {
                if !in_word {
                    self.buf.push(super::WORD_CODE);
                    in_word = true;
                }
                self.buf.push(lower);
            } else if in_word {
                self.ends.push(self.buf.len() as u32);
                in_word = false;
            }
        }
        if in_word {
            self.ends.push(self.buf.len() as u32);
        }
    }

    fn push(&mut self, code: u8, term: &str) {
        self.buf.push(code);
        self.buf.extend_from_slice(term.as_bytes());
        self.ends.push(self.buf.len() as u32);
    }

    /// Records held.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The keys of record `i` (in adding order), in insertion order (a word
    /// may repeat).
    pub(crate) fn keys(&self, i: usize) -> impl Iterator<Item = &[u8]> {
        let first = if i == 0 {
            0
        } else {
            self.records[i - 1] as usize
        };
        let last = self.records[i] as usize;
        let mut start = if first == 0 {
            0
        } else {
            self.ends[first - 1] as usize
        };
        self.ends[first..last].iter().map(move |&end| {
            let k = &self.buf[start..end as usize];
            start = end as usize;
            k
        })
    }
}

impl TermSource<'_> {
    /// Bytes of text the record's keys are made of.
    pub(crate) fn text_len(&self) -> usize {
        let opt = |s: Option<&str>| s.map_or(0, str::len);
        self.category.len()
            + self.action.len()
            + 2 * self.actor.len()
            + opt(self.entity_type)
            + opt(self.entity_id)
            + opt(self.entity_name)
            + self.message.len()
            + self.severity.len()
            + opt(self.recorded_by)
    }
}

/// For each byte: its lowercase form if it is an ASCII letter or digit (part
/// of a word), else 0.
const ASCII_WORD_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            t[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

/// Calls `f` with each lowercase word of `text`; `scratch` is reused.
pub(crate) fn for_each_word(text: &str, scratch: &mut String, f: impl FnMut(&str)) {
    if text.is_ascii() {
        for_each_ascii_word(text, scratch, f);
    } else {
        for_each_unicode_word(text, scratch, f);
    }
}

/// [`for_each_word`] for ASCII text (nearly every record): byte runs of
/// `[A-Za-z0-9]`, which is what `char::is_alphanumeric` and
/// `char::to_lowercase` amount to on ASCII.
fn for_each_ascii_word(text: &str, scratch: &mut String, mut f: impl FnMut(&str)) {
    for run in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        if run.is_empty() {
            continue;
        }
        if run.bytes().any(|b| b.is_ascii_uppercase()) {
            scratch.clear();
            scratch.push_str(run);
            scratch.make_ascii_lowercase();
            f(scratch);
        } else {
            f(run);
        }
    }
}

fn for_each_unicode_word(text: &str, scratch: &mut String, mut f: impl FnMut(&str)) {
    for run in text.split(|c: char| !c.is_alphanumeric()) {
        if run.is_empty() {
            continue;
        }
        scratch.clear();
        scratch.extend(run.chars().flat_map(char::to_lowercase));
        f(scratch);
    }
}

/// A word of a text query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Word {
    /// The lowercase word.
    pub text: String,
    /// Written with a trailing `*`: matches every word starting with `text`.
    pub prefix: bool,
}

/// Splits a `q` parameter into words the way records are split; a run
/// directly followed by `*` is a prefix word.
pub fn parse_words(q: &str) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::new();
    let mut run = String::new();
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            run.extend(c.to_lowercase());
            if chars.peek().is_some_and(|n| n.is_alphanumeric()) {
                continue;
            }
            let prefix = chars.peek() == Some(&'*');
            let w = Word {
                text: std::mem::take(&mut run),
                prefix,
            };
            if !words.contains(&w) {
                words.push(w);
            }
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut out = vec![];
        let mut s = String::new();
        for_each_word(text, &mut s, |w| out.push(w.to_string()));
        out
    }

    #[test]
    fn the_ascii_path_splits_like_the_unicode_one() {
        let alphabet: Vec<char> = "aZ09 -_.*(Qx\t\u{7f}\0!~".chars().collect();
        let mut x: u32 = 12345;
        for len in 0..400 {
            let text: String = (0..len % 40)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    alphabet[(x >> 16) as usize % alphabet.len()]
                })
                .collect();
            let (mut a, mut b) = (vec![], vec![]);
            let mut s = String::new();
            for_each_ascii_word(&text, &mut s, |w| a.push(w.to_string()));
            for_each_unicode_word(&text, &mut s, |w| b.push(w.to_string()));
            assert_eq!(a, b, "{text:?}");
            let mut t = Terms::default();
            t.push_ascii_words(text.as_bytes());
            t.records.push(t.ends.len() as u32);
            let c: Vec<String> = t
                .keys(0)
                .map(|k| {
                    assert_eq!(k[0], crate::index::WORD_CODE);
                    String::from_utf8(k[1..].to_vec()).expect("ascii")
                })
                .collect();
            assert_eq!(c, b, "{text:?}");
        }
    }

    #[test]
    fn splits_like_the_api_says() {
        assert_eq!(words("kitchen-display"), ["kitchen", "display"]);
        assert_eq!(words("capture.fps"), ["capture", "fps"]);
        assert_eq!(words("dev_17"), ["dev", "17"]);
        assert_eq!(
            words("Projector DROPPED  (HDMI 2)"),
            ["projector", "dropped", "hdmi", "2"]
        );
        assert_eq!(words("Überlicht Straße"), ["überlicht", "straße"]);
        assert!(words(" -- ").is_empty());
    }

    #[test]
    fn query_words_and_prefixes() {
        let w = parse_words("Proj* kitchen-display proj*");
        assert_eq!(
            w,
            vec![
                Word {
                    text: "proj".into(),
                    prefix: true
                },
                Word {
                    text: "kitchen".into(),
                    prefix: false
                },
                Word {
                    text: "display".into(),
                    prefix: false
                },
            ]
        );
        assert_eq!(parse_words("*"), vec![]);
        assert_eq!(
            parse_words("a*b"),
            vec![
                Word {
                    text: "a".into(),
                    prefix: true
                },
                Word {
                    text: "b".into(),
                    prefix: false
                },
            ]
        );
    }

    #[test]
    fn a_batch_keeps_each_records_keys_apart() {
        let srcs = [
            ("device", "dev_1", "Projector dropped"),
            ("auth", "key_9", ""),
            ("entity", "x", "Kitchen light on 2"),
        ];
        let src =
            |(category, id, message): (&'static str, &'static str, &'static str)| TermSource {
                category,
                action: "a.b",
                actor: "Alice",
                entity_type: None,
                entity_id: Some(id),
                entity_name: None,
                message,
                severity: "info",
                recorded_by: (id != "x").then_some("key_0a1b2c3d4e5f"),
            };
        let mut batch = Terms::with_capacity(0, 0);
        for s in srcs {
            batch.add(src(s));
        }
        assert_eq!(batch.len(), 3);
        for (i, s) in srcs.into_iter().enumerate() {
            let alone = Terms::of(src(s));
            let want: Vec<&[u8]> = alone.keys(0).collect();
            let got: Vec<&[u8]> = batch.keys(i).collect();
            assert_eq!(got, want, "record {i}");
        }
        batch.clear();
        assert_eq!(batch.len(), 0);
    }

    #[test]
    fn record_terms_cover_fields_and_words() {
        let t = Terms::of(TermSource {
            category: "device",
            action: "device.disconnected",
            actor: "system",
            entity_type: Some("device"),
            entity_id: Some("dev_17"),
            entity_name: Some("Projector Bias Light"),
            message: "Projector dropped",
            severity: "warning",
            recorded_by: Some("key_0a1b2c3d4e5f"),
        });
        let keys: Vec<Vec<u8>> = t.keys(0).map(|k| k.to_vec()).collect();
        assert!(keys.contains(&[&[Field::RecordedBy.code()][..], b"key_0a1b2c3d4e5f"].concat()));
        // A field key only, never words.
        assert!(!keys.contains(&[&[super::super::WORD_CODE][..], b"key"].concat()));
        assert!(!keys.contains(&[&[super::super::WORD_CODE][..], b"0a1b2c3d4e5f"].concat()));
        assert!(keys.contains(&[&[Field::EntityId.code()][..], b"dev_17"].concat()));
        assert!(keys.contains(&[&[super::super::WORD_CODE][..], b"projector"].concat()));
        assert!(keys.contains(&[&[super::super::WORD_CODE][..], b"bias"].concat()));
        assert!(keys.contains(&[&[super::super::WORD_CODE][..], b"system"].concat()));
        assert!(keys.contains(&[&[Field::Severity.code()][..], b"warning"].concat()));
    }
}
