//! What a record contributes to the index: one key per field value and per
//! word, each key being a [`Field`] code byte followed by the term's bytes.
//!
//! Words (API.md "Filters"): maximal runs of Unicode letters and digits,
//! lowercased, taken from `message`, `entity_name` and `actor`.

use super::Field;

/// The index keys of one record, packed into one buffer.
#[derive(Debug, Default, Clone)]
pub struct Terms {
    buf: Vec<u8>,
    ends: Vec<u32>,
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
}

impl Terms {
    /// Every key of a record.
    pub(crate) fn of(src: TermSource<'_>) -> Terms {
        // Room for every key at once, rather than growing the buffers key by
        // key: each field value and each word with its code byte (a word and
        // the separator after it take at least two bytes of text).
        let texts = src.message.len() + src.entity_name.map_or(0, str::len) + src.actor.len();
        let fields = src.category.len()
            + src.action.len()
            + src.actor.len()
            + src.entity_type.map_or(0, str::len)
            + src.entity_id.map_or(0, str::len)
            + src.severity.len();
        let mut t = Terms {
            buf: Vec::with_capacity(fields + texts + texts / 2 + 8),
            ends: Vec::with_capacity(16),
        };
        t.push(Field::Category.code(), src.category);
        t.push(Field::Action.code(), src.action);
        t.push(Field::Actor.code(), src.actor);
        if let Some(v) = src.entity_type {
            t.push(Field::EntityType.code(), v);
        }
        if let Some(v) = src.entity_id {
            t.push(Field::EntityId.code(), v);
        }
        t.push(Field::Severity.code(), src.severity);
        let mut word = String::new();
        for text in [Some(src.message), src.entity_name, Some(src.actor)]
            .into_iter()
            .flatten()
        {
            for_each_word(text, &mut word, |w| t.push(super::WORD_CODE, w));
        }
        t
    }

    fn push(&mut self, code: u8, term: &str) {
        self.buf.push(code);
        self.buf.extend_from_slice(term.as_bytes());
        self.ends.push(self.buf.len() as u32);
    }

    /// The keys, in insertion order (a word may repeat).
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0usize;
        self.ends.iter().map(move |&end| {
            let k = &self.buf[start..end as usize];
            start = end as usize;
            k
        })
    }
}

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
        });
        let keys: Vec<Vec<u8>> = t.keys().map(|k| k.to_vec()).collect();
        assert!(keys.contains(&[&[Field::EntityId.code()][..], b"dev_17"].concat()));
        assert!(keys.contains(&[&[super::super::WORD_CODE][..], b"projector"].concat()));
        assert!(keys.contains(&[&[super::super::WORD_CODE][..], b"bias"].concat()));
        assert!(keys.contains(&[&[super::super::WORD_CODE][..], b"system"].concat()));
        assert!(keys.contains(&[&[Field::Severity.code()][..], b"warning"].concat()));
    }
}
