"""Throughput of SMPP receipt-text parsing and normalization on one core.

Builds a fixed mix of receipt texts (statuses, error codes, date widths, key
order and case vary), then times ``parse_receipt("smpp-text", ...)`` over the
whole mix, five runs, and prints the median rate. As a floor for comparison,
the same run times a bare ``bytes.split()`` over the same inputs.

Usage: .venv/bin/python bench/parse_receipts.py [--receipts N] [--runs N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

from ledger.receipts.model import CarrierProfile
from ledger.receipts.parse import parse_receipt

STATS = ("DELIVRD", "UNDELIV", "EXPIRED", "ACCEPTD", "ENROUTE", "REJECTD", "delivrd", "DELETED")
ERRS = ("000", "001", "006", "011", "034", "1104", "0")
DATES = ("2603140926", "260314092547", "20260314092547", "202603140926")


def build_receipts(count: int) -> list[bytes]:
    """Return ``count`` receipt texts in a repeating mix of real-world variants."""
    receipts: list[bytes] = []
    for index in range(count):
        stat = STATS[index % len(STATS)]
        err = ERRS[index % len(ERRS)]
        date = DATES[index % len(DATES)]
        message_id = f"{5012345678 + index:010d}" if index % 3 else f"{index:08x}"
        if index % 5 == 0:
            # Reordered keys, capitalized Text:, an extra key.
            text = (
                f"stat:{stat} id:{message_id} err:{err} mccmnc:23415 "
                f"done date:{date} sub:001 dlvrd:001 submit date:{date} "
                f"Text:stat:DELIVRD echoed {index}"
            )
        else:
            text = (
                f"id:{message_id} sub:001 dlvrd:001 submit date:{date} "
                f"done date:{date} stat:{stat} err:{err} text:Test message {index:04d}"
            )
        receipts.append(text.encode("ascii"))
    return receipts


def rate(action: Callable[[bytes], object], inputs: list[bytes], runs: int) -> list[float]:
    """Time ``action`` over all inputs ``runs`` times; return receipts per second of each run."""
    rates: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        for body in inputs:
            action(body)
        elapsed = time.perf_counter() - start
        rates.append(len(inputs) / elapsed)
    return rates


def main() -> None:
    """Run the benchmark and print the median rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=100_000, help="receipts per run")
    parser.add_argument("--runs", type=int, default=5, help="timed runs; the median is reported")
    args = parser.parse_args()

    inputs = build_receipts(args.receipts)
    profile = CarrierProfile(name="bench", timezone="+03:00", error_table="gsm-map")

    def parse(body: bytes) -> object:
        return parse_receipt("smpp-text", body, "text/plain", profile)

    def split(body: bytes) -> object:
        return body.split()

    rate(parse, inputs[:1000], 1)  # warm-up: regex and zone caches
    parse_rates = rate(parse, inputs, args.runs)
    split_rates = rate(split, inputs, args.runs)
    parse_median = statistics.median(parse_rates)
    split_median = statistics.median(split_rates)

    print(f"python {platform.python_version()} on {platform.machine()}, one process, one core")
    print(f"inputs: {len(inputs)} receipt texts, {args.runs} runs each")
    print(f"parse_receipt(smpp-text): median {parse_median:,.0f} receipts/s")
    print(f"bytes.split() baseline:   median {split_median:,.0f} receipts/s")
    print(f"parse / split ratio:      {parse_median / split_median:.3f}")


if __name__ == "__main__":
    main()
