"""Write the text example's data: 600 support tickets (billing, delivery, technical) in
``tickets.csv`` with a header, some quoted multi-line messages and 5% filed under the wrong team.

    python examples/text/make_tickets.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

PHRASES = {
    "billing": [
        "I was charged twice for my subscription",
        "the invoice shows the wrong VAT number",
        "please refund the payment from last month",
        "my credit card was declined at checkout",
        "why did the price on my plan go up",
        "I need a copy of the receipt for accounting",
    ],
    "delivery": [
        "the parcel has not arrived after two weeks",
        "the tracking number does not work",
        "the courier left the box at the wrong address",
        "can I change the delivery date",
        "the package arrived damaged and wet",
        "only half of my order was in the box",
    ],
    "technical": [
        "the app crashes when I open the settings page",
        "I cannot log in since the last update",
        "the export to PDF produces an empty file",
        "sync between my phone and laptop stopped working",
        "the password reset email never comes",
        "the page shows error 500 when saving",
    ],
}
OPENERS = ["Hello,", "Hi team,", "Good morning.", "", "Urgent:", "Dear support,"]
CLOSERS = ["Thanks.", "Regards, Sam", "Please help!", "", "Best, A.", "Cheers"]


def main() -> None:
    rng = random.Random(0)
    teams = list(PHRASES)
    rows = []
    for i in range(600):
        team = teams[i % 3]
        body = " and ".join(rng.sample(PHRASES[team], 2))
        message = f"{rng.choice(OPENERS)} {body}.\n{rng.choice(CLOSERS)}".strip()
        filed = team if rng.random() > 0.05 else rng.choice([t for t in teams if t != team])
        rows.append((f"T-{1000 + i}", body.split(" and ")[0].capitalize(), message, filed))
    path = Path(__file__).with_name("tickets.csv")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ticket", "subject", "message", "team"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} tickets to {path}")


if __name__ == "__main__":
    main()
