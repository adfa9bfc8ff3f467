"""Difficulty-stratified arithmetic items: +, -, x with d-digit operands; stratum = (op, d).

Both operands have d digits (d = 1 draws 0-9, else 10^(d-1) .. 10^d - 1); a >= b for subtraction;
multiplication only for d <= `mul_max_digits`. Metadata: digits, carries (or borrows), result digits.
a+b and b+a share one `group` so they stay in one fold; no item appears twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from dnnkit.errors import InputError

OPS = {"add": "+", "sub": "-", "mul": "×"}
DEFAULT_MIX = {1: 0.35, 2: 0.35, 3: 0.20, 4: 0.10}


@dataclass(frozen=True)
class ArithItem:
    op: str
    a: int
    b: int

    @property
    def result(self) -> int:
        return {"add": self.a + self.b, "sub": self.a - self.b, "mul": self.a * self.b}[self.op]


def count_carries(a: int, b: int, op: str) -> int:
    """Carries of column addition, borrows of column subtraction, or, for x, the carries of the
    digit-by-digit partial products (digit pairs whose product is >= 10 plus carries of their sums)."""
    if op == "mul":
        n = 0
        for da in reversed(str(a)):
            carry = 0
            for db in reversed(str(b)):
                carry = (int(da) * int(db) + carry) // 10
                n += carry > 0
        return n
    carries, carry = 0, 0
    xa, xb = str(a)[::-1], str(b)[::-1]
    for i in range(max(len(xa), len(xb))):
        da = int(xa[i]) if i < len(xa) else 0
        db = int(xb[i]) if i < len(xb) else 0
        if op == "add":
            carry = 1 if da + db + carry >= 10 else 0
        else:
            carry = 1 if da - db - carry < 0 else 0
        carries += carry
    return carries


def parse_digits(spec: str) -> list[int]:
    """'1-4' or '1,2,3' -> [1, 2, 3, 4]."""
    try:
        if "-" in spec:
            lo, hi = (int(x) for x in spec.split("-", 1))
            out = list(range(lo, hi + 1))
        else:
            out = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError as exc:
        raise InputError(f"--arith-digits must look like 1-4 or 1,2,3, got {spec!r}") from exc
    if not out or min(out) < 1 or max(out) > 9:
        raise InputError(f"--arith-digits must lie in 1..9, got {spec!r}")
    return out


def parse_ops(spec: str) -> list[str]:
    ops = [o.strip() for o in spec.split(",") if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad or not ops:
        raise InputError(f"--arith-ops takes add,sub,mul; got {spec!r}")
    return ops


def _operand(rng: random.Random, d: int) -> int:
    return rng.randint(0, 9) if d == 1 else rng.randint(10 ** (d - 1), 10 ** d - 1)


def _pool_size(op: str, d: int) -> int:
    n = 10 if d == 1 else 9 * 10 ** (d - 1)
    return n * (n + 1) // 2 if op == "sub" else n * n


def sample_arithmetic(n: int, ops: list[str], digits: list[int], seed: int,
                      mul_max_digits: int = 2) -> list[ArithItem]:
    """`n` distinct items: op uniform over `ops`, d from the default mix restricted to `digits`."""
    rng = random.Random(seed)
    strata = [(op, d) for op in ops for d in digits if op != "mul" or d <= mul_max_digits]
    if not strata:
        raise InputError("no arithmetic stratum is left: --arith-ops mul needs --arith-digits <= 2")
    def mix(d: int) -> float:
        return DEFAULT_MIX.get(d, 0.05)

    weights = [mix(d) / sum(mix(d2) for o2, d2 in strata if o2 == op) for op, d in strata]  # op uniform, then d
    if n > sum(_pool_size(op, d) for op, d in strata):
        raise InputError(f"--n-arith {n} exceeds the number of distinct items of these strata")
    seen: set[tuple[str, int, int]] = set()
    items: list[ArithItem] = []
    tries = 0
    while len(items) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise InputError(f"cannot draw {n} distinct arithmetic items; lower --n-arith")
        op, d = rng.choices(strata, weights=weights)[0]
        a, b = _operand(rng, d), _operand(rng, d)
        if op == "sub" and a < b:
            a, b = b, a
        if (op, a, b) in seen:
            continue
        seen.add((op, a, b))
        items.append(ArithItem(op, a, b))
    return items


def arithmetic_record(item: ArithItem, digits: int) -> dict[str, Any]:
    """The QA record of one item (see dataset.make_record for the common fields)."""
    sym = OPS[item.op]
    lo, hi = sorted((item.a, item.b))
    group = f"arith:{item.op}:{lo}:{hi}" if item.op in ("add", "mul") else f"arith:sub:{item.a}:{item.b}"
    return {
        "id": f"arith-{item.op}-{item.a}-{item.b}",
        "task": "arithmetic",
        "family": "arithmetic",
        "group": group,
        "stratum": f"{item.op}-{digits}d",
        "question": f"What is {item.a} {sym} {item.b}?",
        "answer_stem": f"{item.a} {sym} {item.b} =",
        "gold": [str(item.result)],
        "meta": {"op": item.op, "digits": digits, "carries": count_carries(item.a, item.b, item.op),
                 "result_digits": len(str(abs(item.result))), "entity_len": 0},
    }
