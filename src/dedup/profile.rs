//! A dedup profile: which columns hold which kind of field, how to block, which model scores.
//! Records are read into `Prepared` values once, so every comparison works on normalised data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
}

/// One field of one record, normalised once.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub text: String,
    pub tokens: Vec<String>,
    pub codes: Vec<String>,
    pub number: Option<f64>,
    pub date: Option<(u32, u32, u32)>,
    /// Each token's rarity weight (aligned with `tokens`), written once the whole data set is
    /// known; empty until then.
    pub weights: Vec<f64>,
    /// How rare the whole value is, in [0, 1].
    pub rarity: f64,
}

impl Value {
    /// The weight of token `i`: its rarity when known, else 1 (every token alike).
    pub fn weight(&self, i: usize) -> f64 {
        self.weights.get(i).copied().unwrap_or(1.0)
    }
}

/// A record ready for blocking and comparison: one optional value per profile field.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: String,
    pub values: Vec<Option<Value>>,
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
    pub fn raw_value<'a>(field: &FieldSpec, get: impl Fn(&str) -> Option<&'a str>) -> String {
        field
            .columns
            .iter()
            .filter_map(|c| get(c))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Prepares one record from `column -> raw value` (columns the file lacks are simply absent).
    pub fn prepare(&self, id: String, row: &BTreeMap<&str, &str>) -> Prepared {
        let values = self
            .fields
            .iter()
            .map(|field| {
                let raw = Self::raw_value(field, |c| row.get(c).copied());
                (!raw.is_empty()).then(|| prepare_value(field.kind, &raw))?
            })
            .collect();
        Prepared { id, values }
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

/// `None` when nothing usable is left after normalising (e.g. a phone with no digits).
fn prepare_value(kind: FieldKind, raw: &str) -> Option<Value> {
    let text = match kind {
        FieldKind::Name => normalise::name(raw),
        FieldKind::Text | FieldKind::Codes | FieldKind::Price => normalise::fold(raw),
        FieldKind::Code => normalise::code(raw),
        FieldKind::Date => normalise::date(raw)
            .map(|(y, m, d)| format!("{y:04}{m:02}{d:02}"))
            .unwrap_or_else(|| normalise::code(raw)),
        FieldKind::Phone => normalise::phone(raw),
        FieldKind::Email => normalise::email(raw),
        FieldKind::Address => normalise::address(raw),
    };
    if text.is_empty() {
        return None;
    }
    let codes = if kind == FieldKind::Codes {
        normalise::product_codes(&text)
    } else {
        Vec::new()
    };
    let mut tokens: Vec<String> = text.split(' ').map(str::to_string).collect();
    tokens.sort();
    tokens.dedup();
    Some(Value {
        number: (kind == FieldKind::Price)
            .then(|| normalise::number(raw))
            .flatten(),
        date: (kind == FieldKind::Date)
            .then(|| normalise::date(raw))
            .flatten(),
        text,
        tokens,
        codes,
        weights: Vec::new(),
        rarity: 0.0,
    })
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
        assert_eq!(p.values[0].as_ref().unwrap().text, "jose garcia");
        assert_eq!(p.values[1], None);
    }

    #[test]
    fn blocking_on_an_unknown_field_is_refused() {
        let bad = PROFILE.replace("{ field = \"phone\" }", "{ field = \"fax\" }");
        let err = Profile::parse(&bad).unwrap_err();
        assert!(err.to_string().contains("fax"), "{err}");
    }
}
