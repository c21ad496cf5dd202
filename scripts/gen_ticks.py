#!/usr/bin/env python3
"""Deterministic stock ticks for the windowing scenario (MISSION.md scenario 3).

    gen_ticks.py OUT --seconds N [--rate R] [--seed S] [--jitter-share F] [--max-jitter-ms M]

About R ticks per second of event time (default 100) over N seconds, for the tickers
AMZN AAPL MSFT INTC TBV, starting at 2026-01-05 10:00:00 UTC. A share F (default 0.2) of ticks
arrive out of order: their event time is moved back by up to M ms (default 4999, inside a
5-second bound). Lines are in arrival order; event_time is ISO 8601 with microseconds and no
zone (UTC).
"""
import argparse
import datetime
import json
import random

TICKERS = ["AMZN", "AAPL", "MSFT", "INTC", "TBV"]
START = datetime.datetime(2026, 1, 5, 10, 0, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jitter-share", type=float, default=0.2)
    ap.add_argument("--max-jitter-ms", type=int, default=4999)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    price = {t: 100.0 + 20 * i for i, t in enumerate(TICKERS)}
    step_us = 1_000_000 // a.rate
    with open(a.out, "w") as out:
        for n in range(a.seconds * a.rate):
            arrival_us = n * step_us
            ticker = TICKERS[rng.randrange(len(TICKERS))]
            price[ticker] = round(max(1.0, price[ticker] * (1 + rng.gauss(0, 0.001))), 2)
            event_us = arrival_us
            if rng.random() < a.jitter_share:
                event_us = max(0, arrival_us - rng.randrange(1, a.max_jitter_ms + 1) * 1000)
            t = START + datetime.timedelta(microseconds=event_us)
            out.write(json.dumps({
                "event_time": t.strftime("%Y-%m-%dT%H:%M:%S.%f"),
                "ticker": ticker,
                "price": price[ticker],
            }) + "\n")


if __name__ == "__main__":
    main()
