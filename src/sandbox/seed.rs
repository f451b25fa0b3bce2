//! Deterministic seed data: the same scale and seed give the same records on every run.
//!
//! The ERP holds every account and item. The CRM already holds most of them (go-live: records on
//! both sides before the first sync), some with the ERP number set and some without, plus planted
//! duplicates (typos, abbreviations, reordered names) and a few products whose price drifted.
//! Every fifth customer buys at price list 2 (its `PriceListNum`), the rest at list 1, and their
//! documents are priced from their own list.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::hubspot::HsData;
use super::sap_b1::SapData;
use crate::domain::Timestamp;

#[derive(Debug, Clone)]
pub struct SeedScale {
    pub seed: u64,
    /// Prefix of the ERP customer numbers (`C00001`...).
    pub account_prefix: String,
    pub accounts: usize,
    pub items: usize,
    /// ERP price lists; each item has a price in each.
    pub price_lists: usize,
    /// Share of ERP records already in the CRM at go-live.
    pub crm_overlap: f64,
    /// CRM companies planted as near-duplicates of others.
    pub duplicate_accounts: usize,
    /// ERP contact persons per business partner.
    pub contacts_per_account: usize,
    /// CRM contacts planted as near-duplicates of others (a typo in the name and the e-mail).
    pub duplicate_contacts: usize,
    /// CRM products whose price differs from the ERP's.
    pub drifted_prices: usize,
    /// CRM quotes (none in the ERP yet).
    pub quotes: usize,
    /// ERP sales orders (none in the CRM yet).
    pub orders: usize,
    /// ERP invoices, each for one of the orders.
    pub invoices: usize,
    /// Lines per document: 1 to this many.
    pub max_lines: usize,
    /// How long before the start every seeded record was last modified: data that was there
    /// well before go-live rather than just written.
    pub age: std::time::Duration,
}

impl Default for SeedScale {
    fn default() -> Self {
        Self {
            seed: 42,
            account_prefix: "C".into(),
            accounts: 2_000,
            items: 500,
            price_lists: 3,
            crm_overlap: 0.7,
            duplicate_accounts: 40,
            contacts_per_account: 3,
            duplicate_contacts: 60,
            drifted_prices: 5,
            quotes: 1_000,
            orders: 800,
            invoices: 700,
            max_lines: 4,
            age: std::time::Duration::ZERO,
        }
    }
}

impl SeedScale {
    /// A small seed for tests.
    pub fn small() -> Self {
        Self {
            accounts: 40,
            items: 20,
            duplicate_accounts: 4,
            duplicate_contacts: 4,
            drifted_prices: 2,
            quotes: 10,
            orders: 8,
            invoices: 6,
            ..Self::default()
        }
    }
}

const FIRST: [&str; 16] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Massive",
    "Nakatomi",
    "Gringotts",
    "Oscorp",
];
const SECOND: [&str; 12] = [
    "Industries",
    "Logistics",
    "Foods",
    "Systems",
    "Trading",
    "Holdings",
    "Pharma",
    "Textiles",
    "Motors",
    "Energy",
    "Labs",
    "Retail",
];
const SUFFIX: [&str; 5] = ["GmbH", "Ltd", "Inc", "LLC", "AG"];
const CITIES: [(&str, &str); 6] = [
    ("Berlin", "DE"),
    ("Hamburg", "DE"),
    ("London", "GB"),
    ("Manchester", "GB"),
    ("Chicago", "US"),
    ("Austin", "US"),
];
const INDUSTRIES: [&str; 5] = ["Manufacturing", "Retail", "Wholesale", "Food", "Technology"];
const FIRST_NAMES: [&str; 10] = [
    "Anna", "Ben", "Clara", "David", "Eva", "Felix", "Grace", "Hugo", "Ines", "Jonas",
];
const LAST_NAMES: [&str; 10] = [
    "Schmidt", "Miller", "Novak", "Okafor", "Rossi", "Tanaka", "Dubois", "Kowalski", "Silva",
    "Berg",
];
const PRODUCTS: [&str; 10] = [
    "Bolt", "Bracket", "Valve", "Sensor", "Cable", "Pump", "Filter", "Gasket", "Motor", "Panel",
];

fn account_name(rng: &mut fastrand::Rng, i: usize) -> String {
    format!(
        "{} {} {} {}",
        FIRST[rng.usize(..FIRST.len())],
        SECOND[rng.usize(..SECOND.len())],
        i,
        SUFFIX[rng.usize(..SUFFIX.len())]
    )
}

/// A near-duplicate as people type them: a dropped letter, an abbreviation or a reordering.
fn misspell(rng: &mut fastrand::Rng, name: &str) -> String {
    match rng.u8(..3) {
        0 => {
            let mut chars: Vec<char> = name.chars().collect();
            if chars.len() > 3 {
                chars.remove(1 + rng.usize(..chars.len() - 2));
            }
            chars.into_iter().collect()
        }
        1 => name
            .replace("Industries", "Ind.")
            .replace("Logistics", "Log.")
            .replace("GmbH", "")
            .replace("Inc", "Incorporated")
            .trim()
            .to_string(),
        _ => {
            let mut words: Vec<&str> = name.split(' ').collect();
            words.rotate_left(1);
            words.join(" ")
        }
    }
}

pub fn seed(scale: &SeedScale, now: Timestamp, crm: &mut HsData, erp: &mut SapData) {
    let mut rng = fastrand::Rng::with_seed(scale.seed);
    seed_price_lists(scale, now, erp);
    let mut crm_names = Vec::new();
    let mut crm_contacts: Vec<BTreeMap<String, String>> = Vec::new();
    for i in 1..=scale.accounts {
        let code = format!("{}{i:05}", scale.account_prefix);
        let name = account_name(&mut rng, i);
        let (city, country) = CITIES[rng.usize(..CITIES.len())];
        let street = format!("{} Market Street", rng.u32(1..400));
        let postcode = format!("{:05}", rng.u32(10_000..99_999));
        let phone = format!("+49 30 {:07}", rng.u32(1_000_000..9_999_999));
        let industry = INDUSTRIES[rng.usize(..INDUSTRIES.len())];
        let entity = json!({
            "CardCode": code, "CardName": name, "CardType": "cCustomer", "Phone1": phone,
            "Industry": industry, "Currency": "EUR", "PriceListNum": price_list_of(scale, i),
            "BPAddresses": [{"AddressName": "Bill To", "AddressType": "bo_BillTo", "Street": street,
                             "City": city, "ZipCode": postcode, "Country": country}],
        });
        let mut entity = object(entity);
        let contacts = seed_contacts(scale, &mut rng, &code, crm, &mut crm_contacts, now);
        entity.insert("ContactEmployees".into(), Value::Array(contacts));
        erp.put("BusinessPartners", entity, now);
        if rng.f64() < scale.crm_overlap {
            let mut props = BTreeMap::from([
                ("name".to_string(), name.clone()),
                ("phone".to_string(), phone),
                ("industry".to_string(), industry.to_string()),
                ("address".to_string(), street),
                ("city".to_string(), city.to_string()),
                ("zip".to_string(), postcode),
                ("country".to_string(), country.to_string()),
            ]);
            // Two in three carry the ERP number already; the rest must be linked by name.
            if rng.u8(..3) > 0 {
                props.insert("erp_number".into(), code);
            }
            crm.insert("companies", props, now);
            crm_names.push(name);
        }
    }
    for _ in 0..scale.duplicate_accounts.min(crm_names.len()) {
        let original = &crm_names[rng.usize(..crm_names.len())];
        let name = misspell(&mut rng, original);
        crm.insert(
            "companies",
            BTreeMap::from([("name".to_string(), name)]),
            now,
        );
    }
    for _ in 0..scale.duplicate_contacts.min(crm_contacts.len()) {
        let mut props = crm_contacts[rng.usize(..crm_contacts.len())].clone();
        props.remove("erp_number");
        let typo = |v: &str| misspell(&mut fastrand::Rng::with_seed(v.len() as u64), v);
        if let Some(last) = props.get("lastname").cloned() {
            props.insert("lastname".into(), typo(&last));
        }
        if let Some(email) = props.get("email").cloned() {
            props.insert("email".into(), email.replace('@', ".@"));
        }
        crm.insert("contacts", props, now);
    }
    let items = seed_items(scale, now, &mut rng, crm, erp);
    let docs = Documents {
        scale,
        now,
        items: &items,
    };
    docs.seed_quotes(&mut rng, crm);
    docs.seed_orders_and_invoices(&mut rng, erp);
}

/// The price list customer `i` buys at: every fifth at list 2 (when there is one), the rest at 1.
fn price_list_of(scale: &SeedScale, i: usize) -> usize {
    if scale.price_lists >= 2 && i.is_multiple_of(5) {
        2
    } else {
        1
    }
}

/// An item's price in `list`, in cents: each list 5% of the list-1 price below the one before.
fn list_price(list_1_cents: i64, list: usize) -> i64 {
    list_1_cents - list_1_cents * (list as i64 - 1) / 20
}

/// The ERP contact persons of one partner; most are in the CRM too, two in three with their key.
fn seed_contacts(
    scale: &SeedScale,
    rng: &mut fastrand::Rng,
    card_code: &str,
    crm: &mut HsData,
    crm_contacts: &mut Vec<BTreeMap<String, String>>,
    now: Timestamp,
) -> Vec<Value> {
    let mut members = Vec::new();
    for k in 1..=scale.contacts_per_account {
        let first = FIRST_NAMES[rng.usize(..FIRST_NAMES.len())];
        let last = LAST_NAMES[rng.usize(..LAST_NAMES.len())];
        let email = format!(
            "{}.{}.{}@{}.example",
            first.to_lowercase(),
            last.to_lowercase(),
            k,
            card_code.to_lowercase()
        );
        let phone = format!("+49 30 {:07}", rng.u32(1_000_000..9_999_999));
        members.push(
            json!({"InternalCode": k, "Name": format!("{first} {last}"), "FirstName": first,
                            "LastName": last, "E_Mail": email, "Phone1": phone}),
        );
        if rng.f64() < scale.crm_overlap {
            let mut props = BTreeMap::from([
                ("firstname".to_string(), first.to_string()),
                ("lastname".to_string(), last.to_string()),
                ("email".to_string(), email),
                ("phone".to_string(), phone),
                ("erp_account_number".to_string(), card_code.to_string()),
            ]);
            if rng.u8(..3) > 0 {
                props.insert("erp_number".into(), format!("{card_code}/{k}"));
            }
            crm.insert("contacts", props.clone(), now);
            crm_contacts.push(props);
        }
    }
    members
}

fn seed_price_lists(scale: &SeedScale, now: Timestamp, erp: &mut SapData) {
    for list in 1..=scale.price_lists {
        let entity = json!({"PriceListNo": list, "PriceListName": format!("Price list {list}")});
        erp.put("PriceLists", object(entity), now);
    }
}

/// Seeds the items; returns each one's code and its price in list 1, in cents.
fn seed_items(
    scale: &SeedScale,
    now: Timestamp,
    rng: &mut fastrand::Rng,
    crm: &mut HsData,
    erp: &mut SapData,
) -> Vec<(String, i64)> {
    let mut items = Vec::with_capacity(scale.items);
    for i in 1..=scale.items {
        let code = format!("I{i:05}");
        let name = format!(
            "{} {}-{}",
            PRODUCTS[rng.usize(..PRODUCTS.len())],
            rng.u32(10..99),
            i
        );
        let base_cents = rng.i64(500..50_000);
        items.push((code.clone(), base_cents));
        let prices: Vec<Value> = (1..=scale.price_lists)
            .map(|list| {
                let cents = list_price(base_cents, list);
                json!({"PriceList": list, "Price": cents as f64 / 100.0, "Currency": "EUR"})
            })
            .collect();
        let list_price = prices
            .first()
            .and_then(|p| p.get("Price"))
            .cloned()
            .unwrap_or(Value::Null);
        let entity = json!({"ItemCode": code, "ItemName": name, "ItemType": "itItems",
                            "User_Text": format!("{name}, standard grade"), "ItemPrices": prices});
        erp.put("Items", object(entity), now);
        if rng.f64() < scale.crm_overlap {
            let drifted = i <= scale.drifted_prices;
            let price = match (&list_price, drifted) {
                (Value::Number(n), true) => format!("{:.2}", n.as_f64().unwrap_or(0.0) * 1.1),
                (Value::Number(n), false) => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
                _ => String::new(),
            };
            let props = BTreeMap::from([
                ("name".to_string(), name),
                ("hs_sku".to_string(), code.clone()),
                ("erp_number".to_string(), code),
                ("price".to_string(), price),
            ]);
            crm.insert("products", props, now);
        }
    }
    items
}

struct Documents<'a> {
    scale: &'a SeedScale,
    now: Timestamp,
    /// (item code, list-1 price in cents)
    items: &'a [(String, i64)],
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl Documents<'_> {
    fn day(&self, days_ahead: i64) -> String {
        (self.now.to_datetime() + chrono::Duration::days(days_ahead))
            .format("%Y-%m-%d")
            .to_string()
    }

    /// A customer: its ERP number and the price list it buys at.
    fn account(&self, rng: &mut fastrand::Rng) -> (String, usize) {
        let i = rng.usize(1..=self.scale.accounts.max(1));
        (
            format!("{}{i:05}", self.scale.account_prefix),
            price_list_of(self.scale, i),
        )
    }

    /// (item code, quantity, list-1 price in cents) for each line of one document.
    fn lines(&self, rng: &mut fastrand::Rng) -> Vec<(String, u32, i64)> {
        if self.items.is_empty() {
            return Vec::new();
        }
        (0..rng.usize(1..=self.scale.max_lines.max(1)))
            .map(|_| {
                let (code, cents) = &self.items[rng.usize(..self.items.len())];
                (code.clone(), rng.u32(1..=10), *cents)
            })
            .collect()
    }

    /// CRM quotes with their line items at the customer's list prices; the first few carry a line
    /// priced 10% above (planted price drift on quote lines).
    fn seed_quotes(&self, rng: &mut fastrand::Rng, crm: &mut HsData) {
        for q in 1..=self.scale.quotes {
            let (account, list) = self.account(rng);
            let props = BTreeMap::from([
                ("hs_title".to_string(), format!("Quote {q}")),
                ("erp_account_number".to_string(), account),
                ("quote_date".to_string(), self.day(0)),
                ("hs_expiration_date".to_string(), self.day(30)),
                ("hs_currency".to_string(), "EUR".to_string()),
            ]);
            let quote = crm.insert("quotes", props, self.now);
            for (n, (code, quantity, cents)) in self.lines(rng).into_iter().enumerate() {
                let drifted = q <= self.scale.drifted_prices && n == 0;
                let cents = list_price(cents, list);
                let cents = if drifted { cents * 11 / 10 } else { cents };
                let line = BTreeMap::from([
                    ("hs_sku".to_string(), code),
                    ("quantity".to_string(), quantity.to_string()),
                    ("price".to_string(), money(cents)),
                    ("hs_position_on_quote".to_string(), (n + 1).to_string()),
                ]);
                let line = crm.insert("line_items", line, self.now);
                crm.associate(("quotes", quote), ("line_items", line));
            }
        }
    }

    /// ERP orders at the customer's list prices and invoices for the first of them, line for line.
    fn seed_orders_and_invoices(&self, rng: &mut fastrand::Rng, erp: &mut SapData) {
        let mut orders = Vec::new();
        for _ in 0..self.scale.orders {
            let lines = self.lines(rng);
            let (account, list) = self.account(rng);
            let lines: Vec<Value> = lines
                .into_iter()
                .map(|(code, quantity, cents)| {
                    let cents = list_price(cents, list);
                    json!({"ItemCode": code, "Quantity": quantity, "UnitPrice": cents as f64 / 100.0})
                })
                .collect();
            let order = json!({"CardCode": account, "DocDate": self.day(0),
                               "DocDueDate": self.day(14), "DocCurrency": "EUR",
                               "SalesPersonCode": -1, "DocumentLines": lines});
            if let Some(entry) = erp.put("Orders", object(order), self.now) {
                orders.push(entry);
            }
        }
        for entry in orders.iter().take(self.scale.invoices) {
            let Some(order) = erp.get("Orders", entry).cloned() else {
                continue;
            };
            let lines: Vec<Value> = order
                .get("DocumentLines")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|l| {
                    json!({"ItemCode": l["ItemCode"], "Quantity": l["Quantity"],
                           "UnitPrice": l["UnitPrice"], "BaseType": 17,
                           "BaseEntry": order["DocEntry"], "BaseLine": l["LineNum"]})
                })
                .collect();
            let invoice = json!({"CardCode": order["CardCode"], "DocDate": self.day(0),
                                 "DocDueDate": self.day(30), "DocCurrency": "EUR",
                                 "SalesPersonCode": -1, "DocumentLines": lines});
            erp.put("Invoices", object(invoice), self.now);
        }
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
