"""record.Record: what the model's immutable classes rely on, as dataclasses would give it."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oint_py.record import Record, fields


class Point(Record):
    x: int
    y: int = 0
    label: str | None = None


class Only(Record, kw_only=True):
    a: int
    b: tuple = ()


class Deeper(Point):
    z: int = 5


def test_fields_defaults_and_order():
    assert fields(Point) == ("x", "y", "label") and fields(Deeper) == ("x", "y", "label", "z")
    assert Point(1) == Point(x=1, y=0, label=None)
    assert Deeper(1, 2).as_dict() == {"x": 1, "y": 2, "label": None, "z": 5}
    assert repr(Point(1, 2, "a")) == "Point(x=1, y=2, label='a')"


def test_construction_errors_as_python_reports_them():
    with pytest.raises(TypeError, match="missing argument 'x'"):
        Point()
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        Point(1, w=2)
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        Point(1, x=2)
    with pytest.raises(TypeError, match="at most 3 arguments"):
        Point(1, 2, 3, 4)
    with pytest.raises(TypeError, match="keyword arguments only"):
        Only(1)
    assert Only(a=1).b == ()


def test_immutable():
    p = Point(1)
    with pytest.raises(AttributeError):
        p.x = 2
    with pytest.raises(AttributeError):
        del p.y
    assert p.replace(y=9) == Point(1, 9) and p == Point(1)


def test_equality_is_by_class_and_values():
    assert Point(1) != Deeper(1)
    assert Point(1) != (1, 0, None)
    assert len({Point(1), Point(1), Point(2)}) == 2


@given(st.integers(), st.integers(), st.one_of(st.none(), st.text()))
def test_equal_records_hash_alike_and_survive_replace(x, y, label):
    a, b = Point(x, y, label), Point(x=x, label=label, y=y)
    assert a == b and hash(a) == hash(b)
    assert a.replace() == a and a.replace(**a.as_dict()) == b
