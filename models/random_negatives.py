"""Random non-matching pairs drawn from a labelled pair file's own records, for training.

The benchmark files hold only the candidate pairs their blocking kept, which always share words,
so a model trained on them alone never sees two unrelated products and may score such a pair
high (in a store scan, where blocking pairs far less alike records, it did). Each output row pairs
the left record of one row with the right record of another, labelled 0, skipping any pair the
file labels a match. Unlabelled true matches among random pairs are rare (about one in a
thousand in these files) and left as noise.

Seeded. Usage: python3 models/random_negatives.py SEED COUNT IN.csv OUT.csv (the shipped products
model: seed 5, count 1000, once per train split).
"""
import csv
import random
import sys


def main(seed, count, source, target):
    with open(source, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0].keys())
    left = [c for c in columns if c.startswith("left_")]
    right = [c for c in columns if c.startswith("right_")]
    side = lambda row, cols: tuple(row[c] for c in cols)
    # Sorted so the draw does not depend on Python's string hashing.
    lefts = sorted({side(r, left) for r in rows})
    rights = sorted({side(r, right) for r in rows})
    matches = {(side(r, left), side(r, right)) for r in rows if r["label"] == "1"}
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        a, b = rng.choice(lefts), rng.choice(rights)
        if (a, b) not in matches:
            out.append(dict(zip(left, a)) | dict(zip(right, b)) | {"label": "0"})
    with open(target, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(out)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
