"""Build ``../tickets/tickets.csv``: lesson 08's worked example of a file a learner brings.

    python labkit/datasets/build/make_tickets.py

``tickets_source.csv`` holds 640 clean, distinct support messages, 160 per team (written for this
course). A real export is never that clean, so this script adds the flaws lesson 08's checks are
there to find, each one kind that real ticket exports have, with a fixed seed:
- 8 tickets submitted twice (exact copies, same team);
- 1 ticket routed to two teams (the same text, two labels);
- 6 labels typed by hand: ``Billing`` (4) and ``delivery `` with a trailing space (2);
- 1 ticket with a pasted error log, far longer than the rest (over 256 tokens).
"""

import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOG = ("The app keeps crashing when I open my order history. Here is the log it showed me: "
       + " ".join(f"E/OrderHistory({1200 + i}): java.lang.IllegalStateException at com.shop.app.history.Load{i}"
                  f".render(Load{i}.kt:{40 + i}) retry={i}" for i in range(14)))


def main() -> None:
    rows = list(csv.DictReader((HERE / "tickets_source.csv").open(newline="")))
    rng = random.Random(0)
    copies = [dict(r) for r in rng.sample(rows, 8)]
    conflict = next(dict(r) for r in rows if r["team"] == "technical" and "login" in r["message"].lower())
    conflict["team"] = "account"
    for r in rng.sample([r for r in rows if r["team"] == "billing"], 4):
        r["team"] = "Billing"
    for r in rng.sample([r for r in rows if r["team"] == "delivery"], 2):
        r["team"] = "delivery "
    rows += copies + [conflict, {"message": LOG, "team": "technical"}]
    rng.shuffle(rows)
    out = HERE.parent / "tickets" / "tickets.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["message", "team"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
