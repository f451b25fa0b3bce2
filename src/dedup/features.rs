//! Pair features: string similarities (strsim), exact, numeric and date comparisons, and token
//! agreement weighted by how rare the shared tokens are.

use super::FastMap;
use super::normalise;
use super::profile::{FieldKind, Prepared, Profile, Value};
use super::similarity::{jaro_winkler, osa_distance, sorensen_dice};

/// How many records each token (or whole value) of one field occurs in, by its
/// [`super::profile::text_hash`].
type Counts = FastMap<u64, u32>;

/// Inverse document frequency, at least 1 so a common token still counts a little.
fn idf(records: f64, counts: &Counts, hash: u64) -> f64 {
    let df = counts.get(&hash).copied().unwrap_or(0);
    ((records + 1.0) / (f64::from(df) + 1.0)).ln() + 1.0
}

/// The token and whole-value counts of each field in `fields`, in one pass over the records.
fn count_fields(fields: &[usize], records: &[&mut Prepared]) -> Vec<(Counts, Counts)> {
    let mut counts: Vec<(Counts, Counts)> = vec![Default::default(); fields.len()];
    for r in records {
        for (&f, (tokens, whole)) in fields.iter().zip(&mut counts) {
            if let Some((value, hashes)) = r.hashes(f) {
                for h in hashes {
                    *tokens.entry(*h).or_default() += 1;
                }
                *whole.entry(value).or_default() += 1;
            }
        }
    }
    counts
}

/// Token-frequency weighting: a match on a rare surname is stronger evidence than a match on
/// "smith". Counted once per data set (the fields shared out over the cores), then written into
/// every value so comparing a pair never looks anything up.
///
/// Tokens are counted by a 64-bit hash, not by their text: at a million records, comparing a
/// token with the text of whichever record first had it was a cache miss per token. Two distinct
/// tokens of one field sharing a hash would pool their counts; with foldhash's 64 bits the
/// chance among a field's n distinct tokens is about n^2 / 2^65 (1M distinct social security
/// numbers: 3e-8), and the cost of that event would be two slightly wrong weights, not a
/// lost pair.
pub fn weigh_all(fields: usize, records: &mut [&mut Prepared]) {
    let n = records.len() as f64;
    let max = (n + 1.0).ln() + 1.0;
    let threads = parallelism();
    let chunk = records.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for part in records.chunks_mut(chunk) {
            scope.spawn(move || part.iter_mut().for_each(|r| r.rehash()));
        }
    });
    let counts: Vec<(Counts, Counts)> = {
        let view = &*records;
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        let mine: Vec<usize> = (t..fields).step_by(threads).collect();
                        mine.iter()
                            .copied()
                            .zip(count_fields(&mine, view))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all: Vec<_> = handles.into_iter().flat_map(join).collect();
            all.sort_by_key(|(f, _)| *f);
            all.into_iter().map(|(_, c)| c).collect()
        })
    };
    let counts = &counts;
    std::thread::scope(|scope| {
        for part in records.chunks_mut(chunk) {
            scope.spawn(move || {
                for r in part {
                    r.set_weights(
                        |f, h| idf(n, &counts[f].0, h),
                        |f, h| idf(n, &counts[f].1, h) / max,
                    );
                }
            });
        }
    });
}

/// Worker threads for the data-parallel steps: one per core.
pub fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A scoped thread's result; its panic goes on in the caller.
pub fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Shared-token weight over all-token weight, each token weighted by its rarity.
fn weighted_overlap(a: Value, b: Value) -> f64 {
    let (mut shared, mut all) = (0.0, 0.0);
    let (mut i, mut j) = (0, 0);
    // Both token lists are sorted: one merge pass finds the intersection and the union.
    while i < a.token_count() || j < b.token_count() {
        let ord = match (a.token(i), b.token(j)) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Equal => {
                shared += a.weight(i);
                all += a.weight(i);
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                all += a.weight(i);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                all += b.weight(j);
                j += 1;
            }
        }
    }
    if all == 0.0 { 0.0 } else { shared / all }
}

/// Optimal-string-alignment similarity (Damerau-Levenshtein with adjacent transpositions,
/// each substring edited once), normalised to [0, 1]: the cheap Damerau.
fn damerau(a: &str, b: &str) -> f64 {
    let chars = |s: &str| {
        if s.is_ascii() {
            s.len()
        } else {
            s.chars().count()
        }
    };
    let len = chars(a).max(chars(b));
    if len == 0 {
        1.0
    } else {
        1.0 - osa_distance(a, b) as f64 / len as f64
    }
}

fn feature_names(kind: FieldKind) -> &'static [&'static str] {
    match kind {
        FieldKind::Name => &[
            "missing",
            "exact",
            "jaro_winkler",
            "damerau",
            "dice",
            "weighted",
            "rarity",
        ],
        FieldKind::Company => &[
            "missing",
            "exact",
            "jaro_winkler",
            "damerau",
            "dice",
            "weighted",
            "rarity",
            "legal_form_same",
            "legal_form_conflict",
            "numbers_same",
            "numbers_conflict",
            "numbers_near",
        ],
        FieldKind::Text => &["missing", "dice", "weighted", "jaro_winkler"],
        FieldKind::Code => &["missing", "exact", "damerau"],
        FieldKind::Codes => &[
            "missing",
            "shared",
            "jaccard",
            "best",
            "contained",
            "conflict",
            "colour_conflict",
            "measure_conflict",
            "number_conflict",
            "first_word_same",
            "numbers_same",
            "other_numbers",
        ],
        FieldKind::Date => &[
            "missing",
            "exact",
            "damerau",
            "same_year",
            "day_month_swapped",
        ],
        FieldKind::Phone => &["missing", "exact", "same_last7"],
        FieldKind::Email => &["missing", "exact", "local_jaro_winkler", "same_domain"],
        FieldKind::Address => &["missing", "jaro_winkler", "dice", "weighted"],
        FieldKind::Price => &["missing", "relative_difference"],
    }
}

/// The names of a profile's features, `field.feature`, in vector order.
pub fn names(profile: &Profile) -> Vec<String> {
    profile
        .fields
        .iter()
        .flat_map(|f| {
            feature_names(f.kind)
                .iter()
                .map(move |n| format!("{}.{n}", f.name))
        })
        .collect()
}

/// Sorensen-Dice on token sets.
fn token_dice(a: Value, b: Value) -> f64 {
    let total = a.token_count() + b.token_count();
    if total == 0 {
        return 0.0;
    }
    // Both sorted and distinct: one merge pass counts the shared tokens.
    let (mut x, mut y) = (a.tokens().peekable(), b.tokens().peekable());
    let mut shared = 0;
    while let (Some(s), Some(t)) = (x.peek(), y.peek()) {
        match s.cmp(t) {
            std::cmp::Ordering::Equal => {
                shared += 1;
                x.next();
                y.next();
            }
            std::cmp::Ordering::Less => {
                x.next();
            }
            std::cmp::Ordering::Greater => {
                y.next();
            }
        }
    }
    2.0 * shared as f64 / total as f64
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Long texts are compared on their beginning, where the distinguishing words usually are, and
/// which keeps Jaro-Winkler's quadratic cost bounded.
fn head(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn compare(kind: FieldKind, a: Value, b: Value, out: &mut Vec<f64>) {
    let exact = a.text == b.text;
    // Equal texts score 1 on every similarity: the common case at scale, skipped cheaply.
    let similar = |f: fn(&str, &str) -> f64, x: &str, y: &str| if exact { 1.0 } else { f(x, y) };
    match kind {
        FieldKind::Name => out.extend_from_slice(&[
            0.0,
            flag(exact),
            similar(jaro_winkler, a.text, b.text),
            similar(damerau, a.text, b.text),
            if exact { 1.0 } else { token_dice(a, b) },
            if exact { 1.0 } else { weighted_overlap(a, b) },
            if exact { a.rarity } else { 0.0 },
        ]),
        FieldKind::Company => {
            compare(FieldKind::Name, a, b, out);
            company(a, b, out);
        }
        FieldKind::Text => out.extend_from_slice(&[
            0.0,
            if exact { 1.0 } else { token_dice(a, b) },
            if exact { 1.0 } else { weighted_overlap(a, b) },
            similar(jaro_winkler, head(a.text), head(b.text)),
        ]),
        FieldKind::Code => {
            out.extend_from_slice(&[0.0, flag(exact), similar(damerau, a.text, b.text)])
        }
        FieldKind::Codes => codes(a, b, out),
        FieldKind::Date => {
            let swapped = match (a.date, b.date) {
                (Some((ya, ma, da)), Some((yb, mb, db))) => ya == yb && ma == db && da == mb,
                _ => false,
            };
            out.extend_from_slice(&[
                0.0,
                flag(exact),
                similar(damerau, a.text, b.text),
                flag(a.date.zip(b.date).is_some_and(|(x, y)| x.0 == y.0)),
                flag(swapped && !exact),
            ]);
        }
        FieldKind::Phone => {
            let long = a.text.len() >= 7 && b.text.len() >= 7;
            out.extend_from_slice(&[
                0.0,
                flag(exact),
                flag(long && last7(a.text) == last7(b.text)),
            ]);
        }
        FieldKind::Email => {
            let (la, da) = a.text.split_once('@').unwrap_or((a.text, ""));
            let (lb, db) = b.text.split_once('@').unwrap_or((b.text, ""));
            out.extend_from_slice(&[
                0.0,
                flag(exact),
                jaro_winkler(la, lb),
                flag(!da.is_empty() && da == db),
            ]);
        }
        FieldKind::Address => out.extend_from_slice(&[
            0.0,
            similar(jaro_winkler, a.text, b.text),
            similar(sorensen_dice, a.text, b.text),
            if exact { 1.0 } else { weighted_overlap(a, b) },
        ]),
        FieldKind::Price => match (a.number, b.number) {
            (Some(x), Some(y)) if x.max(y) > 0.0 => {
                out.extend_from_slice(&[0.0, (x - y).abs() / x.max(y)])
            }
            _ => out.extend_from_slice(&[1.0, 0.0]),
        },
    }
}

/// Legal form and number agreement of two company names. `Acme Industries 17 GmbH` and
/// `Acme Industries 17 Ltd` are two companies of one group, as are `... 17 GmbH` and `... 18
/// GmbH`; a dropped or doubled digit (`17` typed `1` or `177`) is a near miss rather than another
/// number, a changed digit is not.
fn company(a: Value, b: Value, out: &mut Vec<f64>) {
    let (fa, fb): (Vec<&str>, Vec<&str>) = (a.codes().collect(), b.codes().collect());
    let forms = !fa.is_empty() && !fb.is_empty();
    let (na, nb) = (normalise::numbers(a.text), normalise::numbers(b.text));
    let conflict = numbers_disagree(&na, &nb);
    let near = conflict
        && na.iter().any(|x| {
            nb.iter()
                .any(|y| x.len().abs_diff(y.len()) == 1 && osa_distance(x, y) == 1)
        });
    out.extend_from_slice(&[
        flag(forms && fa.iter().any(|f| fb.contains(f))),
        flag(forms && disjoint(&fa, &fb)),
        flag(!na.is_empty() && na == nb),
        flag(conflict),
        flag(near),
    ]);
}

/// Both sides state numbers and neither side's are all among the other's: `Acme 17` and
/// `Acme 18`, `Motor 26-1` and `Motor 26-486`. A side that only adds numbers (a size the
/// other left out) does not disagree.
fn numbers_disagree(a: &[&str], b: &[&str]) -> bool {
    let within = |x: &[&str], y: &[&str]| x.iter().all(|n| y.contains(n));
    !a.is_empty() && !b.is_empty() && !within(a, b) && !within(b, a)
}

fn last7(s: &str) -> &str {
    &s[s.len().saturating_sub(7)..]
}

/// Model-number agreement: any code shared, Jaccard of the code sets, the best similarity of any
/// two codes (catches `lds4821ww` vs `lds4821wh`), whether a code of one side occurs inside the
/// other side's text with separators removed (`htz510` in "samsung ht-z510 home theater"), and a
/// conflict flag when both carry codes and none agrees in any of these ways, which usually means
/// two models of one product line.
fn codes(a: Value, b: Value, out: &mut Vec<f64>) {
    fn first<'a>(v: Value<'a>) -> Option<&'a str> {
        v.text.split(' ').next()
    }
    // Number agreement is two flags, so a side that states no number is neither agreement nor
    // disagreement (one flag read "no numbers" as "the numbers agree").
    let (na, nb) = (normalise::numbers(a.text), normalise::numbers(b.text));
    let other = numbers_disagree(&na, &nb);
    let variants = [
        flag(disjoint(&colours(a), &colours(b))),
        flag(disjoint(&measures(a), &measures(b))),
        flag(disjoint(&numbers(a), &numbers(b))),
        // Usually the brand, which catalogues without a brand column still put first.
        flag(first(a) == first(b)),
        flag(!na.is_empty() && !nb.is_empty() && !other),
        flag(other),
    ];
    if a.codes().len() == 0 || b.codes().len() == 0 {
        out.extend_from_slice(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        out.extend_from_slice(&variants);
        return;
    }
    // A code may be another's prefix (a colour or region suffix appended).
    let same = |x: &str, y: &str| {
        x == y || (x.len().min(y.len()) >= 5 && (x.starts_with(y) || y.starts_with(x)))
    };
    let shared = a.codes().filter(|x| b.codes().any(|y| same(x, y))).count();
    let union = (a.codes().len() + b.codes().len()).saturating_sub(shared);
    let best = a
        .codes()
        .flat_map(|x| b.codes().map(move |y| damerau(x, y)))
        .fold(0.0, f64::max);
    let compact = |v: Value| v.text.replace(' ', "");
    let (ca, cb) = (compact(a), compact(b));
    let contained = a.codes().any(|x| cb.contains(x)) || b.codes().any(|y| ca.contains(y));
    out.extend_from_slice(&[
        0.0,
        flag(shared > 0),
        shared as f64 / union.max(1) as f64,
        best,
        flag(contained),
        flag(shared == 0 && !contained),
    ]);
    out.extend_from_slice(&variants);
}

/// Plain numbers of two to four digits (sizes, series, pack counts, short part numbers): longer
/// ones are already codes.
fn numbers(v: Value<'_>) -> Vec<&str> {
    v.tokens()
        .filter(|t| (2..=4).contains(&t.len()) && t.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// Both sides name some, and none in common: the same product line in another variant.
fn disjoint(a: &[&str], b: &[&str]) -> bool {
    !a.is_empty() && !b.is_empty() && !a.iter().any(|x| b.contains(x))
}

/// Colour words, abbreviations written out (`blk` is black).
fn colours(v: Value) -> Vec<&'static str> {
    const COLOURS: &[(&str, &str)] = &[
        ("black", "black"),
        ("blk", "black"),
        ("white", "white"),
        ("wht", "white"),
        ("silver", "silver"),
        ("slv", "silver"),
        ("red", "red"),
        ("blue", "blue"),
        ("navy", "blue"),
        ("green", "green"),
        ("grn", "green"),
        ("yellow", "yellow"),
        ("pink", "pink"),
        ("purple", "purple"),
        ("orange", "orange"),
        ("gray", "gray"),
        ("grey", "gray"),
        ("brown", "brown"),
        ("gold", "gold"),
        ("cyan", "cyan"),
        ("magenta", "magenta"),
        ("beige", "beige"),
        ("bronze", "bronze"),
        ("titanium", "titanium"),
        ("chrome", "chrome"),
    ];
    let mut out: Vec<&str> = v
        .tokens()
        .filter_map(|t| COLOURS.iter().find(|(w, _)| *w == t).map(|(_, c)| *c))
        .collect();
    out.dedup();
    out
}

/// Sizes and capacities (`16gb`, `50in`, `12mp`): a number glued to a unit.
fn measures(v: Value<'_>) -> Vec<&str> {
    const UNITS: &[&str] = &[
        "gb", "tb", "mb", "mp", "mm", "cm", "ft", "in", "inch", "w", "hz", "ghz", "mhz", "oz",
        "lb", "lbs", "pk", "pack", "ml",
    ];
    v.tokens()
        .filter(|t| {
            let unit = t.trim_start_matches(|c: char| c.is_ascii_digit());
            unit.len() < t.len() && UNITS.contains(&unit)
        })
        .collect()
}

/// Appends the feature vector of one pair, in the order of [`names`], to `out`. The records'
/// token weights must have been written ([`TokenStats::weigh`]).
pub fn pair_into(profile: &Profile, a: &Prepared, b: &Prepared, out: &mut Vec<f64>) {
    for (i, field) in profile.fields.iter().enumerate() {
        match (a.value(i), b.value(i)) {
            (Some(x), Some(y)) => compare(field.kind, x, y, out),
            _ => {
                // Missing on either side: only the missing flag is set.
                let n = feature_names(field.kind).len();
                out.push(1.0);
                out.extend(std::iter::repeat_n(0.0, n - 1));
            }
        }
    }
}

/// The feature vector of one pair.
pub fn pair(profile: &Profile, a: &Prepared, b: &Prepared) -> Vec<f64> {
    let mut out = Vec::with_capacity(64);
    pair_into(profile, a, b, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn profile() -> Profile {
        Profile::parse(
            r#"
entity = "persons"
model = "m"
[[fields]]
name = "surname"
kind = "name"
columns = ["surname"]
[[fields]]
name = "dob"
kind = "date"
columns = ["dob"]
[[fields]]
name = "phone"
kind = "phone"
columns = ["phone"]
[[fields]]
name = "title"
kind = "codes"
columns = ["title"]
"#,
        )
        .unwrap()
    }

    fn rec(p: &Profile, id: &str, cols: &[(&str, &str)]) -> Prepared {
        p.prepare(id.into(), &cols.iter().copied().collect::<BTreeMap<_, _>>())
    }

    #[test]
    fn vector_matches_names_and_flags_missing_fields() {
        let p = profile();
        let a = rec(&p, "a", &[("surname", "Smith"), ("dob", "19800102")]);
        let b = rec(&p, "b", &[("surname", "Smyth"), ("dob", "19800201")]);
        let f = pair(&p, &a, &b);
        let names = names(&p);
        assert_eq!(f.len(), names.len());
        let get = |n: &str| f[names.iter().position(|x| x == n).unwrap()];
        assert_eq!(get("surname.exact"), 0.0);
        assert!(get("surname.jaro_winkler") > 0.8);
        assert_eq!(get("dob.day_month_swapped"), 1.0);
        assert_eq!(get("phone.missing"), 1.0);
        assert_eq!(get("title.missing"), 1.0);
    }

    #[test]
    fn rare_tokens_weigh_more_than_common_ones() {
        let p = profile();
        let mut recs: Vec<Prepared> = (0..20)
            .map(|i| rec(&p, &i.to_string(), &[("surname", "smith jones")]))
            .collect();
        recs.push(rec(&p, "x", &[("surname", "smith zabrowski")]));
        recs.push(rec(&p, "y", &[("surname", "jones zabrowski")]));
        weigh_all(p.fields.len(), &mut recs.iter_mut().collect::<Vec<_>>());
        let names = names(&p);
        let w = names.iter().position(|x| x == "surname.weighted").unwrap();
        // Both pairs share one token of two; the pair sharing the rare one scores higher.
        let common = pair(&p, &recs[0], &recs[20])[w];
        let rare = pair(&p, &recs[20], &recs[21])[w];
        assert!(rare > common, "rare {rare} common {common}");
    }

    #[test]
    fn weights_are_the_text_counts_also_when_weighed_tables_are_joined() {
        let p = profile();
        let surnames = [
            "smith jones",
            "smith",
            "jones zabrowski",
            "smith jones",
            "quinn",
        ];
        let mut recs: Vec<Prepared> = surnames
            .iter()
            .enumerate()
            .map(|(i, s)| rec(&p, &i.to_string(), &[("surname", s)]))
            .collect();
        // As `dedup link` does: one table weighed on its own (its hashes dropped), then both.
        weigh_all(
            p.fields.len(),
            &mut recs[..2].iter_mut().collect::<Vec<_>>(),
        );
        weigh_all(p.fields.len(), &mut recs.iter_mut().collect::<Vec<_>>());
        let n = recs.len() as f64;
        let idf = |df: usize| ((n + 1.0) / (df as f64 + 1.0)).ln() + 1.0;
        let with = |t: &str| {
            surnames
                .iter()
                .filter(|s| s.split(' ').any(|w| w == t))
                .count()
        };
        for r in &recs {
            let v = r.value(0).unwrap();
            for (i, t) in v.tokens().enumerate() {
                assert_eq!(v.weight(i), idf(with(t)), "{t}");
            }
            let same = surnames.iter().filter(|s| **s == v.text).count();
            assert_eq!(v.rarity, idf(same) / idf(0), "{}", v.text);
        }
    }

    fn get(p: &Profile, f: &[f64], name: &str) -> f64 {
        f[names(p).iter().position(|x| x == name).unwrap()]
    }

    #[test]
    fn company_names_compare_legal_forms_and_numbers() {
        let p = Profile::load(std::path::Path::new("config/dedup/accounts.toml")).unwrap();
        let company = |id: &str, name: &str| rec(&p, id, &[("name", name)]);
        let gmbh = company("a", "Acme Industries 17 GmbH");
        let ltd = company("b", "Acme Industries 17 Ltd");
        let typo = company("c", "Acme Industries 1 GmbH");
        let other = company("d", "Acme Industries 18 GmbH");
        let bare = company("e", "Industries 17 Acme");
        let f = pair(&p, &gmbh, &ltd);
        assert_eq!(
            get(&p, &f, "name.exact"),
            1.0,
            "legal forms are not the name"
        );
        assert_eq!(get(&p, &f, "name.legal_form_conflict"), 1.0);
        assert_eq!(get(&p, &f, "name.numbers_same"), 1.0);
        let f = pair(&p, &gmbh, &typo);
        assert_eq!(
            (
                get(&p, &f, "name.legal_form_same"),
                get(&p, &f, "name.numbers_conflict"),
                get(&p, &f, "name.numbers_near")
            ),
            (1.0, 1.0, 1.0)
        );
        let f = pair(&p, &other, &gmbh);
        assert_eq!(get(&p, &f, "name.numbers_conflict"), 1.0);
        assert_eq!(
            get(&p, &f, "name.numbers_near"),
            0.0,
            "17 and 18: another number"
        );
        let f = pair(&p, &company("x", "Acme Industries 4157 GmbH"), &gmbh);
        assert_eq!(get(&p, &f, "name.numbers_near"), 0.0);
        // No legal form on one side: neither agreement nor conflict.
        let f = pair(&p, &gmbh, &bare);
        assert_eq!(
            (
                get(&p, &f, "name.legal_form_same"),
                get(&p, &f, "name.legal_form_conflict"),
                get(&p, &f, "name.numbers_same")
            ),
            (0.0, 0.0, 1.0)
        );
    }

    #[test]
    fn number_flags_leave_a_side_without_numbers_unknown() {
        let p = profile();
        let t = |id: &str, title: &str| rec(&p, id, &[("title", title)]);
        let flags = |a: &Prepared, b: &Prepared| {
            let f = pair(&p, a, b);
            (
                get(&p, &f, "title.numbers_same"),
                get(&p, &f, "title.other_numbers"),
            )
        };
        let short = t("a", "Monster cable 5m");
        let long = t("b", "Monster cable 10m");
        let pack = t("c", "Monster cable 5m 2 pack");
        let bare = t("d", "Sanus wall mount shelf");
        assert_eq!(flags(&short, &long), (0.0, 1.0));
        // A side that only adds a number (a pack size) does not disagree.
        assert_eq!(flags(&short, &pack), (1.0, 0.0));
        assert_eq!(flags(&short, &bare), (0.0, 0.0), "no numbers: neither flag");
    }

    #[test]
    fn product_codes_agree_or_conflict() {
        let p = profile();
        let a = rec(&p, "a", &[("title", "LG LDS4821WW dishwasher")]);
        let b = rec(&p, "b", &[("title", "lg lds4821ww white")]);
        let c = rec(&p, "c", &[("title", "LG LDF6920BB dishwasher")]);
        let d = rec(&p, "d", &[("title", "LG LDS4821WW 16gb black")]);
        let e = rec(&p, "e", &[("title", "LG LDS4821WW 8gb blk")]);
        let names = names(&p);
        let i = names.iter().position(|x| x == "title.shared").unwrap();
        assert_eq!(pair(&p, &a, &b)[i], 1.0);
        assert_eq!(pair(&p, &a, &c)[i], 0.0);
        assert_eq!(pair(&p, &a, &c)[i + 4], 1.0);
        // Same model, other capacity: a measure conflict but no colour conflict.
        let de = pair(&p, &d, &e);
        assert_eq!((de[i], de[i + 5], de[i + 6]), (1.0, 0.0, 1.0));
    }
}
