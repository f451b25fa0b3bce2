//! A dedup profile: which columns hold which kind of field, how to block, which model scores.
//! Records are read into `Prepared` values once, so every comparison works on normalised data.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use foldhash::fast::FixedState;
use serde::Deserialize;

use super::DedupError;
use super::normalise;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What the records are (persons, accounts, contacts, products): written into the model.
    pub entity: String,
    /// The column holding each record's id, for one-table runs.
    #[serde(default)]
    pub id: Option<String>,
    /// The model directory (`model-v<N>.json` + `meta.json`), relative to the working directory.
    pub model: PathBuf,
    pub fields: Vec<FieldSpec>,
    #[serde(default)]
    pub blocking: BlockingSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    pub kind: FieldKind,
    /// Columns whose values (those present in the file) are joined into this field, so one
    /// profile serves files that call the same attribute `name` or `title`.
    pub columns: Vec<String>,
    /// Personal data (e-mail, phone, birth date, national id...): pseudonymised before an LLM
    /// sees it when `llm.redact_personal_data` is on.
    #[serde(default)]
    pub personal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// A person's or an organisation's name.
    Name,
    /// An organisation's name: compared as a name, and besides on its legal form (`GmbH`, `Ltd`)
    /// and the numbers in it, which tell apart companies whose names are otherwise alike.
    Company,
    /// Free text (titles, descriptions, categories).
    Text,
    /// An identifier, postcode or model number: compared after stripping separators.
    Code,
    /// Model-number-like tokens found anywhere in the columns (for products).
    Codes,
    Date,
    Phone,
    Email,
    Address,
    Price,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockingSpec {
    /// Records sharing the value of one of these keys are compared.
    #[serde(default)]
    pub keys: Vec<Vec<KeyPart>>,
    /// Sorted neighbourhood passes: records sorted by the key, each compared with the next
    /// `window - 1`.
    #[serde(default)]
    pub sorted: Vec<SortedSpec>,
    /// Blocks larger than this are skipped (a key value too common to mean anything, like an
    /// empty-ish surname), which keeps the candidate count near-linear.
    #[serde(default = "default_max_block")]
    pub max_block: usize,
    /// Blocks of up to this many records are compared all against all; larger ones (a birth
    /// date shared by dozens in a million people) are sorted by `order` and each record compared
    /// with the next `window - 1` only. Default: `max_block` (all pairs in every block kept).
    #[serde(default)]
    pub all_pairs_up_to: Option<usize>,
    /// The order inside a large block: records that agree on it sit side by side.
    #[serde(default)]
    pub order: Vec<KeyPart>,
    #[serde(default = "default_window")]
    pub window: usize,
}

fn default_window() -> usize {
    4
}

fn default_max_block() -> usize {
    50
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortedSpec {
    pub key: Vec<KeyPart>,
    pub window: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPart {
    pub field: String,
    #[serde(default)]
    pub transform: Transform,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// The normalised value.
    #[default]
    Exact,
    /// Soundex of the first word.
    Soundex,
    /// The first three characters.
    Prefix3,
    /// The first word.
    FirstToken,
    /// The words in sorted order, so `Industries 17 Acme` and `Acme Industries 17` agree.
    SortedTokens,
}

/// A token or product code of one record: a span of the record's text, with its rarity weight.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    start: u32,
    len: u32,
    weight: f64,
}

/// What a field holds besides its text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Extra {
    None,
    Number(f64),
    Date(u32, u32, u32),
}

/// Where one field's text, tokens and codes are in its record (an empty text range: missing).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Field {
    text: (u32, u32),
    /// Token spans `tokens.0..tokens.1`, sorted by token, then the codes up to `codes_end`.
    tokens: (u32, u32),
    codes_end: u32,
    extra: Extra,
    rarity: f64,
}

/// One field of one record, normalised once: a view into the record's compact storage.
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    pub text: &'a str,
    arena: &'a str,
    tokens: &'a [Span],
    codes: &'a [Span],
    pub number: Option<f64>,
    pub date: Option<(u32, u32, u32)>,
    /// How rare the whole value is, in [0, 1] (0 until the data set is weighed).
    pub rarity: f64,
}

fn span<'a>(arena: &'a str, s: &Span) -> &'a str {
    &arena[s.start as usize..(s.start + s.len) as usize]
}

impl<'a> Value<'a> {
    /// The distinct words of the value, sorted.
    pub fn tokens(&self) -> impl ExactSizeIterator<Item = &'a str> + Clone + 'a {
        let arena = self.arena;
        self.tokens.iter().map(move |s| span(arena, s))
    }

    pub fn token(&self, i: usize) -> Option<&'a str> {
        self.tokens.get(i).map(|s| span(self.arena, s))
    }

    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// The weight of token `i`: its rarity once the data set is weighed, else 1 (all alike).
    pub fn weight(&self, i: usize) -> f64 {
        self.tokens.get(i).map_or(1.0, |s| s.weight)
    }

    /// Product codes found in the value (fields of kind `codes`), or the legal forms a company
    /// name states (kind `company`).
    pub fn codes(&self) -> impl ExactSizeIterator<Item = &'a str> + Clone + 'a {
        let arena = self.arena;
        self.codes.iter().map(move |s| span(arena, s))
    }
}

/// A record ready for blocking and comparison: one optional value per profile field. Every
/// string of the record lives in one allocation, so a million records fit in memory.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: String,
    text: Box<str>,
    fields: Box<[Field]>,
    spans: Box<[Span]>,
    /// Until the record is weighed, [`text_hash`] of each field's text, then of each span. Hashed
    /// while the text is at hand, so counting a million records' tokens reads only these and the
    /// counts, never text kept in whichever record first had a token.
    hashes: Box<[u64]>,
}

impl Prepared {
    /// Field `i`, `None` when the record has no usable value for it.
    pub fn value(&self, i: usize) -> Option<Value<'_>> {
        let f = self.fields.get(i)?;
        if f.text.0 == f.text.1 {
            return None;
        }
        let (number, date) = match f.extra {
            Extra::None => (None, None),
            Extra::Number(n) => (Some(n), None),
            Extra::Date(y, m, d) => (None, Some((y, m, d))),
        };
        Some(Value {
            text: &self.text[f.text.0 as usize..f.text.1 as usize],
            arena: &self.text,
            tokens: &self.spans[f.tokens.0 as usize..f.tokens.1 as usize],
            codes: &self.spans[f.tokens.1 as usize..f.codes_end as usize],
            number,
            date,
            rarity: f.rarity,
        })
    }

    pub fn field_count(&self) -> usize {
        self.fields.len()
    }
}

/// A token's or a whole value's key in the token counts: a 64-bit hash of its text. Two texts
/// sharing a hash would share one count; see [`super::features::weigh_all`] for why that is
/// left to chance.
pub(crate) fn text_hash(text: &str) -> u64 {
    FixedState::default().hash_one(text)
}

impl Prepared {
    /// Field `i`'s value hash and its tokens' hashes; `None` when the field is missing or the
    /// record was weighed (see [`Self::rehash`]).
    pub(crate) fn hashes(&self, i: usize) -> Option<(u64, &[u64])> {
        let f = self.fields.get(i)?;
        if f.text.0 == f.text.1 {
            return None;
        }
        let n = self.fields.len();
        let tokens = self
            .hashes
            .get(n + f.tokens.0 as usize..n + f.tokens.1 as usize)?;
        Some((self.hashes[i], tokens))
    }

    /// Hashes the values and tokens again if weighing dropped their hashes: a weighed table
    /// weighed anew together with another (`dedup link`).
    pub(crate) fn rehash(&mut self) {
        if !self.hashes.is_empty() {
            return;
        }
        let text = &self.text;
        let whole = self
            .fields
            .iter()
            .map(|f| text_hash(&text[f.text.0 as usize..f.text.1 as usize]));
        let spans = self.spans.iter().map(|s| text_hash(span(text, s)));
        self.hashes = whole.chain(spans).collect();
    }

    /// Writes each token's weight, `token(field, hash)`, and each field's rarity,
    /// `rarity(field, hash)`, then drops the hashes: comparing pairs needs only the weights.
    pub(crate) fn set_weights(
        &mut self,
        token: impl Fn(usize, u64) -> f64,
        rarity: impl Fn(usize, u64) -> f64,
    ) {
        self.rehash();
        let n = self.fields.len();
        for (i, f) in self.fields.iter_mut().enumerate() {
            if f.text.0 == f.text.1 {
                f.rarity = 0.0;
                continue;
            }
            f.rarity = rarity(i, self.hashes[i]);
            let (a, b) = (f.tokens.0 as usize, f.tokens.1 as usize);
            for (s, h) in self.spans[a..b].iter_mut().zip(&self.hashes[n + a..n + b]) {
                s.weight = token(i, *h);
            }
        }
        self.hashes = Box::default();
    }
}

impl Prepared {
    /// Starts loading the record's storage (fields, spans, text) into the cache, for a record
    /// about to be compared: scoring visits records in an order no cache predicts, and at a
    /// million records waiting for memory was most of the time a pair took.
    pub(crate) fn prefetch(&self) {
        prefetch_lines(&self.fields);
        prefetch_lines(&self.spans);
        prefetch_lines(self.text.as_bytes());
    }
}

/// Lines of a record's storage worth fetching ahead; a long description is read as it comes.
const PREFETCH_LINES: usize = 16;

fn prefetch_lines<T>(items: &[T]) {
    let start = items.as_ptr().cast::<u8>();
    for offset in (0..size_of_val(items)).step_by(64).take(PREFETCH_LINES) {
        prefetch(start.wrapping_add(offset));
    }
}

/// Asks the CPU to start loading the cache line at `p`. A hint: it changes no result.
#[inline]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing into the program and cannot fault, whatever the address;
    // SSE is part of every x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Builds one record's compact storage field by field. One builder serves every record a thread
/// prepares, so its buffers grow once and each record gets exactly sized boxes.
#[derive(Default)]
struct Builder {
    text: String,
    fields: Vec<Field>,
    spans: Vec<Span>,
    /// [`text_hash`] of each field's text.
    values: Vec<u64>,
    /// [`text_hash`] of each span, parallel to `spans`.
    hashes: Vec<u64>,
}

thread_local! {
    static BUILDER: RefCell<Builder> = RefCell::default();
}

impl Builder {
    fn clear(&mut self) {
        self.text.clear();
        self.fields.clear();
        self.spans.clear();
        self.values.clear();
        self.hashes.clear();
    }

    fn missing(&mut self) {
        let at = self.text.len() as u32;
        let n = self.spans.len() as u32;
        self.fields.push(Field {
            text: (at, at),
            tokens: (n, n),
            codes_end: n,
            extra: Extra::None,
            rarity: 0.0,
        });
        self.values.push(text_hash(""));
    }

    fn push(&mut self, text: &str, extra: Extra, codes: &[String]) {
        let start = self.text.len();
        self.text.push_str(text);
        let first = self.spans.len();
        let mut offset = start;
        for word in text.split(' ') {
            self.spans.push(Span {
                start: offset as u32,
                len: word.len() as u32,
                weight: 1.0,
            });
            offset += word.len() + 1;
        }
        let arena = &self.text;
        let word = |s: &Span| &arena[s.start as usize..(s.start + s.len) as usize];
        // Sorted and made distinct among this field's words only: the spans before `first` are
        // other fields' words and codes, and one of them may be the same word as the first here.
        let words = &mut self.spans[first..];
        words.sort_by(|x, y| word(x).cmp(word(y)));
        let mut distinct = 0;
        for i in 0..words.len() {
            if distinct == 0 || word(&words[distinct - 1]) != word(&words[i]) {
                words[distinct] = words[i];
                distinct += 1;
            }
        }
        let tokens_end = first + distinct;
        self.spans.truncate(tokens_end);
        for code in codes {
            self.spans.push(Span {
                start: self.text.len() as u32,
                len: code.len() as u32,
                weight: 1.0,
            });
            self.text.push_str(code);
        }
        let arena = &self.text;
        self.hashes.extend(
            self.spans[first..]
                .iter()
                .map(|s| text_hash(span(arena, s))),
        );
        self.values.push(text_hash(text));
        self.fields.push(Field {
            text: (start as u32, (start + text.len()) as u32),
            tokens: (first as u32, tokens_end as u32),
            codes_end: self.spans.len() as u32,
            extra,
            rarity: 0.0,
        });
    }

    fn finish(&self, id: String) -> Prepared {
        let hashes: Box<[u64]> = self.values.iter().chain(&self.hashes).copied().collect();
        Prepared {
            id,
            text: self.text.as_str().into(),
            fields: self.fields.as_slice().into(),
            spans: self.spans.as_slice().into(),
            hashes,
        }
    }
}

impl Profile {
    pub fn load(path: &Path) -> Result<Self, DedupError> {
        let text = std::fs::read_to_string(path).map_err(|source| DedupError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            DedupError::Profile { message, .. } => DedupError::Profile {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, DedupError> {
        let profile: Self = toml_from_str(text)?;
        for part in profile
            .blocking
            .keys
            .iter()
            .flatten()
            .chain(profile.blocking.sorted.iter().flat_map(|s| &s.key))
            .chain(&profile.blocking.order)
        {
            if profile.field_index(&part.field).is_none() {
                return Err(DedupError::Profile {
                    path: PathBuf::new(),
                    message: format!("blocking names unknown field {}", part.field),
                });
            }
        }
        Ok(profile)
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The raw value of one field: the present columns joined.
    pub fn raw_value<'a>(field: &FieldSpec, get: impl Fn(&str) -> Option<&'a str>) -> Cow<'a, str> {
        let mut present = field
            .columns
            .iter()
            .filter_map(|c| get(c))
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let Some(first) = present.next() else {
            return Cow::Borrowed("");
        };
        // One column is the usual case: no copy.
        match present.next() {
            None => Cow::Borrowed(first),
            Some(second) => {
                let mut joined = format!("{first} {second}");
                for v in present {
                    joined.push(' ');
                    joined.push_str(v);
                }
                Cow::Owned(joined)
            }
        }
    }

    /// Prepares one record from `column -> raw value` (columns the file lacks are simply absent).
    pub fn prepare(&self, id: String, row: &BTreeMap<&str, &str>) -> Prepared {
        self.prepare_with(id, |c| row.get(c).copied())
    }

    /// Prepares one record, reading its columns through `get`.
    pub fn prepare_with<'a>(&self, id: String, get: impl Fn(&str) -> Option<&'a str>) -> Prepared {
        BUILDER.with_borrow_mut(|record| {
            record.clear();
            for field in &self.fields {
                let raw = Self::raw_value(field, &get);
                match prepare_value(field.kind, &raw) {
                    Some((text, extra)) => {
                        // What a kind compares besides the words: product codes, legal forms.
                        let codes: Vec<String> = match field.kind {
                            FieldKind::Codes => normalise::product_codes(&text),
                            FieldKind::Company => normalise::legal_forms(&raw)
                                .into_iter()
                                .map(str::to_string)
                                .collect(),
                            _ => Vec::new(),
                        };
                        record.push(&text, extra, &codes)
                    }
                    None => record.missing(),
                }
            }
            record.finish(id)
        })
    }
}

fn toml_from_str(text: &str) -> Result<Profile, DedupError> {
    use figment::Figment;
    use figment::providers::{Format, Toml};
    Figment::new()
        .merge(Toml::string(text))
        .extract()
        .map_err(|e| DedupError::Profile {
            path: PathBuf::new(),
            message: e.to_string(),
        })
}

/// The normalised text and what else the kind carries; `None` when nothing usable is left
/// after normalising (e.g. a phone with no digits).
fn prepare_value(kind: FieldKind, raw: &str) -> Option<(String, Extra)> {
    if raw.is_empty() {
        return None;
    }
    let date = (kind == FieldKind::Date)
        .then(|| normalise::date(raw))
        .flatten();
    let text = match kind {
        FieldKind::Name => normalise::name(raw),
        FieldKind::Company => normalise::company(raw),
        FieldKind::Text | FieldKind::Codes | FieldKind::Price => normalise::fold(raw),
        FieldKind::Code => normalise::code(raw),
        FieldKind::Date => date
            .map(|(y, m, d)| format!("{y:04}{m:02}{d:02}"))
            .unwrap_or_else(|| normalise::code(raw)),
        FieldKind::Phone => normalise::phone(raw),
        FieldKind::Email => normalise::email(raw),
        FieldKind::Address => normalise::address(raw),
    };
    if text.is_empty() {
        return None;
    }
    let extra = match (kind, date) {
        (FieldKind::Price, _) => normalise::number(raw).map_or(Extra::None, Extra::Number),
        (_, Some((y, m, d))) => Extra::Date(y, m, d),
        _ => Extra::None,
    };
    Some((text, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"
entity = "persons"
id = "id"
model = "models/persons"
[[fields]]
name = "name"
kind = "name"
columns = ["first", "last"]
[[fields]]
name = "phone"
kind = "phone"
columns = ["phone"]
[blocking]
keys = [[{ field = "phone" }]]
sorted = [{ key = [{ field = "name", transform = "soundex" }], window = 4 }]
"#;

    #[test]
    fn columns_are_joined_and_missing_ones_ignored() {
        let profile = Profile::parse(PROFILE).unwrap();
        let row = BTreeMap::from([("first", "José"), ("last", "García Ltd"), ("x", "1")]);
        let p = profile.prepare("1".into(), &row);
        assert_eq!(p.value(0).unwrap().text, "jose garcia");
        assert!(p.value(1).is_none());
    }

    #[test]
    fn each_field_keeps_its_own_words_and_codes() {
        let profile = Profile::parse(
            r#"
entity = "products"
model = "m"
[[fields]]
name = "title"
kind = "codes"
columns = ["title"]
[[fields]]
name = "brand"
kind = "name"
columns = ["brand"]
[[fields]]
name = "category"
kind = "text"
columns = ["category"]
"#,
        )
        .unwrap();
        // The title's last word is also its code and the brand's first word; the brand's last
        // word is the category's first.
        let row = BTreeMap::from([
            ("title", "Canon SD1100IS canon"),
            ("brand", "sd1100is xerox"),
            ("category", "xerox printers"),
        ]);
        let p = profile.prepare("1".into(), &row);
        let words = |i: usize| p.value(i).unwrap().tokens().collect::<Vec<_>>();
        assert_eq!(words(0), ["canon", "sd1100is"]);
        assert_eq!(
            p.value(0).unwrap().codes().collect::<Vec<_>>(),
            ["sd1100is"]
        );
        assert_eq!(words(1), ["sd1100is", "xerox"]);
        assert_eq!(words(2), ["printers", "xerox"]);
    }

    #[test]
    fn blocking_on_an_unknown_field_is_refused() {
        let bad = PROFILE.replace("{ field = \"phone\" }", "{ field = \"fax\" }");
        let err = Profile::parse(&bad).unwrap_err();
        assert!(err.to_string().contains("fax"), "{err}");
    }
}
