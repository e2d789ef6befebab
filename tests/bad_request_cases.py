"""Generated bad requests for the servers (tests/test_deployment.py): one hypothesis strategy per kind of
mistake, each with the answer this project's contract and MLflow's server must give."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from hypothesis import strategies as st


@dataclass
class BadRequest:
    """A generated request and what each kind of server must answer: "4xx", "413", "200" (the same predictions
    as the clean request), "4xx|200" (MLflow converts the value when it can), "4xx|500" (see MLFLOW_DEPTH)."""

    kind: str
    raw: bytes
    ours: str
    mlflow: str


# MLflow's server parses the body with Python's json module and answers 500 (its RecursionError, not ours) when
# the JSON is nested deeper than the recursion limit allows; shallower nesting gets its 400.
MLFLOW_DEPTH = 500


def bad_requests(backend, good: list[dict], schema, max_body_bytes: int) -> list[st.SearchStrategy[BadRequest]]:
    """Malformed, mistyped, incomplete, padded, oversized and deeply nested variants of a good request: one
    strategy per kind."""
    key = next(iter(backend.request_body([])))  # "records" (ours) or "dataframe_records" (MLflow)
    clean = json.dumps(backend.request_body(good)).encode()

    def with_value(column: str, value) -> bytes:
        return json.dumps(backend.request_body([{**record, column: value} for record in good])).encode()

    def without(columns: list[str]) -> bytes:
        rows = [{k: v for k, v in record.items() if k not in columns} for record in good]
        return json.dumps(backend.request_body(rows)).encode()

    def nested(depth: int, opener: bytes, closer: bytes) -> bytes:
        return b'{"%s": [' % key.encode() + opener * depth + b"1" + closer * depth + b"]}"

    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
    extra_key = st.text(min_size=1, max_size=12).map(lambda k: f"x_{k}")  # never a model input nor MLflow's keys
    numbers, others = schema.numeric_features, schema.categorical_features + schema.time_columns
    containers = st.one_of(st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=3))
    return [
        st.integers(1, len(clean) - 1).map(lambda n: BadRequest("truncated JSON", clean[:n], "4xx", "4xx")),
        st.binary(min_size=1, max_size=64).map(lambda b: BadRequest("random bytes", b, "4xx", "4xx")),
        st.one_of(scalars, st.lists(scalars, max_size=4)).map(
            lambda v: BadRequest("body not an object", json.dumps(v).encode(), "4xx", "4xx")
        ),
        st.one_of(scalars, st.lists(st.one_of(scalars, st.lists(scalars, max_size=2)), max_size=4)).map(
            lambda v: BadRequest("rows not a list of objects", json.dumps({key: v}).encode(), "4xx", "4xx")
        ),
        st.sets(st.sampled_from(schema.model_inputs), min_size=1).map(
            lambda cols: BadRequest("missing fields", without(sorted(cols)), "4xx", "4xx")
        ),
        st.tuples(st.sampled_from(numbers), st.one_of(st.booleans(), containers)).map(
            lambda cv: BadRequest("wrong type for a number", with_value(*cv), "4xx", "4xx|200")
        ),
        st.tuples(st.sampled_from(numbers), st.one_of(st.text(max_size=10), st.floats().map(str))).map(
            lambda cv: BadRequest(  # a finite numeral as text means the number: the contract takes it
                "string where a number belongs", with_value(*cv), "4xx|200" if numeral(cv[1]) else "4xx", "4xx|200"
            )
        ),
        st.tuples(st.sampled_from(numbers), st.sampled_from([float("nan"), float("inf"), float("-inf")])).map(
            lambda cv: BadRequest("NaN/Infinity literal", with_value(*cv), "4xx", "4xx|200")
        ),
        st.tuples(st.sampled_from(others), st.one_of(st.booleans(), containers)).map(
            lambda cv: BadRequest("wrong type for a category or time", with_value(*cv), "4xx", "4xx|200")
        ),
        st.tuples(st.dictionaries(extra_key, scalars, min_size=1, max_size=3), st.booleans()).map(
            lambda extra: BadRequest(
                "extra fields",
                json.dumps(
                    {**backend.request_body([{**r, **extra[0]} for r in good]), **(extra[0] if extra[1] else {})}
                ).encode(),
                "200",
                "200",
            )
        ),
        st.tuples(st.integers(1, 64 * 1024), st.booleans()).map(
            lambda sb: BadRequest(
                "over the body limit",
                clean[:-1] + b', "x_pad": "' + b"x" * (max_body_bytes + sb[0]) + b'"}'
                if sb[1]
                else b'{"%s": "' % key.encode() + b"x" * (max_body_bytes + sb[0]) + b'"}',
                "413",
                "200" if sb[1] else "4xx",  # MLflow's server has no body limit
            )
        ),
        st.tuples(st.integers(2, 50_000), st.booleans()).map(
            lambda db: BadRequest(
                "deeply nested JSON",
                nested(db[0], b"[", b"]") if db[1] else nested(db[0], b'{"a": ', b"}"),
                "4xx",
                "4xx|500" if db[0] >= MLFLOW_DEPTH else "4xx",
            )
        ),
    ]


def numeral(text: str) -> bool:
    try:
        return math.isfinite(float(text.strip()))
    except ValueError:
        return False


def allowed(status: int, expected: str) -> bool:
    """Whether an HTTP status is one of those `expected` lists ("4xx", "413", "4xx|200", ...)."""
    return any(400 <= status < 500 if option == "4xx" else status == int(option) for option in expected.split("|"))
