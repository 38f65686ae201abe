"""Golden printed output compared as a person reads it: the words exactly, the numbers closely.

A README transcript holds numbers rounded for reading (``0.69417``, ``99.88%``). Float32
round-off differs between the versions of torch, NumPy and scikit-learn that ``pyproject.toml``
allows, and can move the last printed digit. So a number with decimals may differ by a couple of
units in its last printed place, plus a relative 1e-4 (for numbers printed to eight digits, such
as probabilities after 1000 float32 epochs). Whole numbers are counts (epochs, rows, support) and
must be equal, as must everything else.
"""

from __future__ import annotations

import re

# A number as printed: sign, digits with thousands separators, decimals, exponent.
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?(?![\w])")
LAST_PLACE_UNITS = 2  # how many units in the last printed place two runs may differ by
RELATIVE = 1e-4  # and, for numbers printed to many digits (probabilities), by this share


def _value(token: str) -> float:
    return float(token.replace(",", ""))


def _tolerance(token: str) -> float:
    mantissa, _, exponent = token.replace(",", "").partition("e")
    decimals = len(mantissa.partition(".")[2])
    if not decimals and not exponent:
        return 0.0  # a whole number is a count (epochs, rows, support): exact
    unit = 10.0 ** (-decimals + (int(exponent) if exponent else 0))
    return LAST_PLACE_UNITS * unit + RELATIVE * abs(_value(token))


def differences(printed: str, expected: str) -> list[str]:
    """Where ``printed`` departs from ``expected``: the words, or a number beyond tolerance."""
    printed_words, expected_words = NUMBER.split(printed), NUMBER.split(expected)
    if printed_words != expected_words:
        for line, (mine, theirs) in enumerate(
            zip(printed.splitlines(), expected.splitlines(), strict=False), 1
        ):
            if NUMBER.split(mine) != NUMBER.split(theirs):
                return [f"line {line}: printed {mine!r}, expected {theirs!r}"]
        return [f"printed {len(printed.splitlines())} lines, expected {len(expected.splitlines())}"]
    return [
        f"printed {mine}, expected {theirs}"
        for mine, theirs in zip(NUMBER.findall(printed), NUMBER.findall(expected), strict=True)
        if abs(_value(mine) - _value(theirs)) > _tolerance(theirs)
    ]


def assert_same_output(printed: str, expected: str) -> None:
    """Assert that ``printed`` is ``expected`` up to round-off in the last printed digits."""
    problems = differences(printed, expected)
    assert not problems, "\n".join(problems)
