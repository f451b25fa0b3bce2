"""Labelled training tables for the accounts and contacts models, in the shape syncwarden's store
holds those records (canonical field names), with duplicates typed the way people type them:
dropped letters, abbreviations, reordered words, a stray dot in an e-mail, partial records, a
newer phone number.

Seeded and independent of the sandbox's own seed, so the sandbox's planted duplicates are data
the models never saw. Usage: python3 models/generate_training.py SEED OUT_DIR (the shipped tables:
seed 7).
"""
import csv
import random
import sys

FIRST = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Wonka",
         "Tyrell", "Cyberdyne", "Soylent", "Massive", "Nakatomi", "Gringotts", "Oscorp", "Aperture",
         "Monarch", "Pied", "Dunder", "Sterling", "Prestige", "Wernham", "Bluth"]
SECOND = ["Industries", "Logistics", "Foods", "Systems", "Trading", "Holdings", "Pharma",
          "Textiles", "Motors", "Energy", "Labs", "Retail", "Services", "Partners", "Metals"]
SUFFIX = ["GmbH", "Ltd", "Inc", "LLC", "AG", "Corp", ""]
CITIES = [("Berlin", "DE"), ("Hamburg", "DE"), ("London", "GB"), ("Manchester", "GB"),
          ("Chicago", "US"), ("Austin", "US"), ("Munich", "DE"), ("Leeds", "GB")]
INDUSTRIES = ["Manufacturing", "Retail", "Wholesale", "Food", "Technology", "Energy"]
FIRST_NAMES = ["Anna", "Ben", "Clara", "David", "Eva", "Felix", "Grace", "Hugo", "Ines", "Jonas",
               "Karin", "Lukas", "Maria", "Noah", "Olga", "Paul"]
LAST_NAMES = ["Schmidt", "Miller", "Novak", "Okafor", "Rossi", "Tanaka", "Dubois", "Kowalski",
              "Silva", "Berg", "Fischer", "Jensen", "Moreau", "Costa"]


def misspell(rng, name):
    kind = rng.randrange(3)
    if kind == 0 and len(name) > 3:
        i = 1 + rng.randrange(len(name) - 2)
        return name[:i] + name[i + 1:]
    if kind == 1:
        return (name.replace("Industries", "Ind.").replace("Logistics", "Log.")
                .replace("GmbH", "").replace("Inc", "Incorporated").strip())
    words = name.split(" ")
    return " ".join(words[1:] + words[:1])


def accounts(rng, n, dups, later):
    """`later` draws what was added after the first version (so the rest stays as it was): a
    duplicate typed in later often carries the company's newer phone number."""
    rows = []
    for i in range(1, n + 1):
        number = f" {rng.randrange(1, 5000)}" if rng.random() < 0.6 else ""
        name = f"{rng.choice(FIRST)} {rng.choice(SECOND)}{number} {rng.choice(SUFFIX)}".strip()
        city, country = rng.choice(CITIES)
        rows.append({"id": f"A{i}", "entity_id": f"A{i}", "name": name,
                     "phone": f"+49 30 {rng.randrange(1_000_000, 9_999_999)}",
                     "industry": rng.choice(INDUSTRIES),
                     "billing_street": f"{rng.randrange(1, 400)} Market Street",
                     "billing_city": city, "billing_postcode": f"{rng.randrange(10000, 99999)}",
                     "billing_country": country})
    for d in range(dups):
        original = rng.choice(rows[:n])
        dup = {"id": f"D{d}", "entity_id": original["entity_id"],
               "name": misspell(rng, original["name"])}
        if rng.random() < 0.4:
            for f in ["phone", "industry", "billing_street", "billing_city", "billing_postcode",
                      "billing_country"]:
                if rng.random() < 0.7:
                    dup[f] = original[f]
        if later.random() < 0.3:
            dup["phone"] = f"+49 40 {later.randrange(1_000_000, 9_999_999)}"
        rows.append(dup)
    return rows


def contacts(rng, n_accounts, dups):
    rows = []
    for a in range(1, n_accounts + 1):
        card = f"K{a:05d}"
        for k in range(1, 4):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            rows.append({"id": f"{card}/{k}", "entity_id": f"{card}/{k}", "first_name": first,
                         "last_name": last,
                         "email": f"{first.lower()}.{last.lower()}.{k}@{card.lower()}.example",
                         "phone": f"+49 30 {rng.randrange(1_000_000, 9_999_999)}",
                         "account": card})
    originals = list(rows)
    for d in range(dups):
        original = rng.choice(originals)
        dup = dict(original, id=f"D{d}")
        dup["last_name"] = misspell(rng, original["last_name"])
        r = rng.random()
        if r < 0.5:
            dup["email"] = original["email"].replace("@", ".@")
        elif r < 0.7:
            dup["email"] = original["email"].upper()
        if rng.random() < 0.2:
            dup.pop("phone")
        rows.append(dup)
    return rows


def write(path, rows):
    columns = sorted({c for r in rows for c in r})
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    seed, out = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(seed)
    write(f"{out}/accounts-train.csv", accounts(rng, 2000, 300, random.Random(seed + 1)))
    write(f"{out}/contacts-train.csv", contacts(rng, 700, 300))
