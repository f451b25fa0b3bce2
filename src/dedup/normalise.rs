//! Normalisers, one per field kind: the same thing written two ways should come out the same.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower case, accents removed (é -> e, ß -> ss), every run of non-alphanumerics one space.
pub fn fold(raw: &str) -> String {
    // Decomposing ASCII changes nothing: most values skip it.
    if raw.is_ascii() {
        fold_chars(raw.chars(), raw.len())
    } else {
        fold_chars(raw.nfkd().filter(|c| !is_combining_mark(*c)), raw.len())
    }
}

fn fold_chars(chars: impl Iterator<Item = char>, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut space = true;
    for c in chars {
        if c == 'ß' {
            out.push_str("ss");
            space = false;
        } else if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            space = false;
        } else if c == '&' {
            if !space {
                out.push(' ');
            }
            out.push_str("and ");
            space = true;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Legal-form suffixes that say nothing about which company it is.
const LEGAL_SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "ltd",
    "limited",
    "llc",
    "llp",
    "gmbh",
    "ag",
    "kg",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "sa",
    "sarl",
    "sas",
    "srl",
    "spa",
    "bv",
    "nv",
    "pty",
    "oy",
    "ab",
];

/// Abbreviations people write for the same word in names.
const NAME_ABBREVIATIONS: &[(&str, &str)] = &[
    ("intl", "international"),
    ("int", "international"),
    ("mfg", "manufacturing"),
    ("bros", "brothers"),
    ("svcs", "services"),
    ("svc", "service"),
    ("tech", "technology"),
    ("techn", "technology"),
    ("technologies", "technology"),
    ("sys", "systems"),
    ("assoc", "associates"),
    ("dept", "department"),
    ("univ", "university"),
    ("grp", "group"),
    ("hldgs", "holdings"),
    ("wm", "william"),
    ("chas", "charles"),
    ("jas", "james"),
];

/// Street-address abbreviations, written out.
const ADDRESS_ABBREVIATIONS: &[(&str, &str)] = &[
    ("st", "street"),
    ("str", "street"),
    ("rd", "road"),
    ("ave", "avenue"),
    ("av", "avenue"),
    ("dr", "drive"),
    ("ln", "lane"),
    ("ct", "court"),
    ("crt", "court"),
    ("pl", "place"),
    ("hwy", "highway"),
    ("blvd", "boulevard"),
    ("cres", "crescent"),
    ("cct", "circuit"),
    ("pde", "parade"),
    ("tce", "terrace"),
    ("sq", "square"),
    ("mt", "mount"),
    ("n", "north"),
    ("s", "south"),
    ("e", "east"),
    ("w", "west"),
    ("apt", "unit"),
    ("apartment", "unit"),
    ("flat", "unit"),
    ("suite", "unit"),
    ("ste", "unit"),
];

fn expand<'a>(word: &'a str, table: &[(&str, &'static str)]) -> &'a str {
    table
        .iter()
        .find(|(short, _)| *short == word)
        .map_or(word, |(_, long)| long)
}

/// A person's or an organisation's name: folded, abbreviations written out, legal forms dropped
/// (but never the whole name: "Co" alone stays).
pub fn name(raw: &str) -> String {
    let folded = fold(raw);
    let words: Vec<&str> = folded
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| expand(w, NAME_ABBREVIATIONS))
        .collect();
    let kept: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !LEGAL_SUFFIXES.contains(w))
        .collect();
    if kept.is_empty() {
        words.join(" ")
    } else {
        kept.join(" ")
    }
}

/// A company's name: as [`name`], with numbers cut from letters first, so a space lost between
/// a number and a legal form (`Tyrell Foods 5AG`) does not hide either.
pub fn company(raw: &str) -> String {
    name(&split_numbers(raw))
}

fn split_numbers(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 4);
    let mut last: Option<char> = None;
    for c in raw.chars() {
        if let Some(l) = last
            && l.is_alphanumeric()
            && c.is_alphanumeric()
            && l.is_ascii_digit() != c.is_ascii_digit()
        {
            out.push(' ');
        }
        out.push(c);
        last = Some(c);
    }
    out
}

/// The legal forms a name states, each in one spelling (`Incorporated` is `inc`), in order of
/// appearance: two records naming different forms are usually two companies of one group.
pub fn legal_forms(raw: &str) -> Vec<&'static str> {
    const SAME: &[(&str, &str)] = &[
        ("incorporated", "inc"),
        ("limited", "ltd"),
        ("corporation", "corp"),
        ("company", "co"),
    ];
    let mut forms: Vec<&'static str> = Vec::new();
    for word in fold(&split_numbers(raw)).split(' ') {
        let word = SAME
            .iter()
            .find(|(long, _)| *long == word)
            .map_or(word, |(_, short)| short);
        if let Some(form) = LEGAL_SUFFIXES.iter().find(|s| **s == word)
            && !forms.contains(form)
        {
            forms.push(form);
        }
    }
    forms
}

/// The digit runs of a folded text, letters around them cut off (`5m`, `ht z510` and `kdl40ex500`
/// give `5`, `510` and `40`, `500`), leading zeros dropped so `05` and `5` agree.
pub fn numbers(folded: &str) -> Vec<&str> {
    let mut out: Vec<&str> = folded
        .split(|c: char| !c.is_ascii_digit())
        .filter(|run| !run.is_empty())
        .map(|run| {
            let trimmed = run.trim_start_matches('0');
            if trimmed.is_empty() { "0" } else { trimmed }
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A street address: folded, abbreviations written out, `#12` and `no 12` as `unit 12`.
pub fn address(raw: &str) -> String {
    let marked = raw.replace('#', " unit ");
    fold(&marked)
        .split(' ')
        .filter(|w| !w.is_empty() && *w != "no")
        .map(|w| expand(w, ADDRESS_ABBREVIATIONS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A phone number as E.164-like digits: separators gone, the international `00` and the national
/// trunk `0` dropped, so `+44 (0)20 7946 0018`, `0044 20 7946 0018` and `020 7946 0018` agree on
/// their trailing digits.
pub fn phone(raw: &str) -> String {
    // "(0)" is the trunk prefix written inside an international number.
    let raw = raw.replace("(0)", "");
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.strip_prefix("00").unwrap_or(&digits);
    let digits = digits.strip_prefix('0').unwrap_or(digits);
    digits.to_string()
}

/// An e-mail address: trimmed and lower case (the domain is case-insensitive and in practice
/// so is the local part).
pub fn email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// A product or id code with its separators stripped: `MB13-PNK/SEE.v2` -> `mb13pnkseev2`.
pub fn code(raw: &str) -> String {
    fold(raw).replace(' ', "")
}

/// A number written with currency signs or thousands separators: `$1,299.00` -> 1299.
pub fn number(raw: &str) -> Option<f64> {
    let cleaned: String = raw
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    cleaned.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A calendar date as `(year, month, day)` from `YYYYMMDD`, `YYYY-MM-DD` or `DD/MM/YYYY`.
pub fn date(raw: &str) -> Option<(u32, u32, u32)> {
    let raw = raw.trim();
    let parts: Vec<&str> = raw
        .split(['-', '/', '.'])
        .filter(|p| !p.is_empty())
        .collect();
    let (y, m, d) = match parts.as_slice() {
        [one] if one.len() == 8 && one.chars().all(|c| c.is_ascii_digit()) => {
            (&one[0..4], &one[4..6], &one[6..8])
        }
        [y, m, d] if y.len() == 4 => (*y, *m, *d),
        [d, m, y] if y.len() == 4 => (*y, *m, *d),
        _ => return None,
    };
    let (y, m, d) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    // A malformed month or day is still evidence (typos happen), so only a day of 0 is refused.
    (d > 0 && m > 0).then_some((y, m, d))
}

/// Tokens of a folded text that look like model numbers or part codes: letters and digits mixed,
/// or long digit runs. They identify a product far better than its wording.
pub fn product_codes(folded: &str) -> Vec<String> {
    let mut codes: Vec<String> = folded
        .split(' ')
        .filter(|t| {
            let digits = t.chars().filter(char::is_ascii_digit).count();
            let letters = t.chars().filter(|c| c.is_alphabetic()).count();
            (digits > 0 && letters > 0 && t.len() >= 4) || digits >= 5
        })
        .map(str::to_string)
        .collect();
    // Codes split by a separator ("ht-z510", "920-000264") fold to two words: tried joined too.
    let words: Vec<&str> = folded.split(' ').collect();
    for pair in words.windows(2) {
        let digits = |w: &str| w.chars().all(|c| c.is_ascii_digit());
        let split_code = pair[0].len() <= 4
            && ((pair[0].chars().any(char::is_alphabetic)
                && pair[1].chars().any(|c| c.is_ascii_digit()))
                || (digits(pair[0]) && digits(pair[1])));
        let joined = format!("{}{}", pair[0], pair[1]);
        if split_code && joined.len() >= 5 {
            codes.push(joined);
        }
    }
    codes.sort();
    codes.dedup();
    codes
}

/// American Soundex: names that sound alike share a code (Smith, Smyth -> S530), for blocking.
pub fn soundex(word: &str) -> String {
    let mut chars = word.chars().filter(char::is_ascii_alphabetic);
    let Some(first) = chars.next() else {
        return String::new();
    };
    let digit = |c: char| match c.to_ascii_lowercase() {
        'b' | 'f' | 'p' | 'v' => '1',
        'c' | 'g' | 'j' | 'k' | 'q' | 's' | 'x' | 'z' => '2',
        'd' | 't' => '3',
        'l' => '4',
        'm' | 'n' => '5',
        'r' => '6',
        'h' | 'w' => 'h',
        _ => '0',
    };
    let mut out = String::from(first.to_ascii_uppercase());
    let mut last = digit(first);
    for c in chars {
        let d = digit(c);
        if d == 'h' {
            continue;
        }
        if d != '0' && d != last {
            out.push(d);
            if out.len() == 4 {
                break;
            }
        }
        last = d;
    }
    while out.len() < 4 {
        out.push('0');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_case_accents_punctuation_and_legal_forms() {
        assert_eq!(name("Müller & Söhne GmbH"), "muller and sohne");
        assert_eq!(name("ACME, Inc."), "acme");
        assert_eq!(name("Acme Intl. Ltd"), "acme international");
        assert_eq!(name("  O'Brien  "), "o brien");
        assert_eq!(name("Straße"), "strasse");
        // A name made only of a legal form is kept rather than emptied.
        assert_eq!(name("Co"), "co");
    }

    #[test]
    fn legal_forms_are_found_in_one_spelling() {
        assert_eq!(legal_forms("Acme Industries 17 GmbH"), vec!["gmbh"]);
        assert_eq!(legal_forms("Acme Incorporated"), legal_forms("ACME, Inc."));
        assert_eq!(legal_forms("Acme Ltd. (Limited)"), vec!["ltd"]);
        assert!(legal_forms("Acme Industries").is_empty());
        assert_eq!(legal_forms("Tyrell Foods 5AG"), vec!["ag"]);
    }

    #[test]
    fn company_names_keep_numbers_apart_from_words() {
        assert_eq!(company("Tyrell Foods 5AG"), company("Tyrell Foods 5 AG"));
        assert_eq!(company("Tyrell Foods 5AG"), "tyrell foods 5");
        assert_eq!(company("3M Company"), "3 m");
    }

    #[test]
    fn numbers_are_digit_runs_without_leading_zeros() {
        assert_eq!(numbers(&fold("Cable 5m")), vec!["5"]);
        assert_eq!(numbers(&fold("Motor 26-486")), vec!["26", "486"]);
        assert_eq!(numbers(&fold("CAB-005 / 5 m")), vec!["5"]);
        assert_eq!(numbers(&fold("Sony KDL-40EX500")), vec!["40", "500"]);
        assert!(numbers("bolt").is_empty());
    }

    #[test]
    fn addresses_spell_out_abbreviations_and_units() {
        assert_eq!(address("12 Main St., Apt 4"), "12 main street unit 4");
        assert_eq!(address("12 main street #4"), "12 main street unit 4");
        assert_eq!(address("Baker Rd"), "baker road");
    }

    #[test]
    fn phones_agree_across_national_and_international_forms() {
        assert_eq!(phone("+44 (0)20 7946 0018"), "442079460018");
        assert_eq!(phone("0044 20 7946 0018"), "442079460018");
        assert_eq!(phone("020 7946-0018"), "2079460018");
        assert!(phone("442079460018").ends_with(&phone("020 7946-0018")));
    }

    #[test]
    fn emails_codes_numbers_dates() {
        assert_eq!(email(" Jane.Doe@Example.COM "), "jane.doe@example.com");
        assert_eq!(code("MB13-PNK/SEE.v2"), "mb13pnkseev2");
        assert_eq!(number("$1,299.00"), Some(1299.0));
        assert_eq!(number("n/a"), None);
        assert_eq!(date("19081209"), Some((1908, 12, 9)));
        assert_eq!(date("1908-12-09"), Some((1908, 12, 9)));
        assert_eq!(date("09/12/1908"), Some((1908, 12, 9)));
        assert_eq!(date("soon"), None);
    }

    #[test]
    fn product_codes_are_mixed_tokens() {
        let codes = product_codes(&fold("LG 24' LDS4821WW dishwasher, 16 place settings"));
        assert_eq!(codes, vec!["lds4821ww".to_string()]);
        let split = product_codes(&fold("Sony KDL-40EX500 40in"));
        assert!(split.contains(&"kdl40ex500".to_string()), "{split:?}");
        let split = product_codes(&fold("Samsung HT-Z510, Logitech 920-000264"));
        assert!(split.contains(&"htz510".to_string()), "{split:?}");
        assert!(split.contains(&"920000264".to_string()), "{split:?}");
    }

    #[test]
    fn soundex_groups_similar_names() {
        assert_eq!(soundex("smith"), "S530");
        assert_eq!(soundex("smyth"), "S530");
        assert_eq!(soundex("robert"), "R163");
        assert_eq!(soundex("rupert"), "R163");
        assert_eq!(soundex("ashcraft"), "A261");
        assert_eq!(soundex(""), "");
    }
}
