"""Immutable records, declared like dataclasses, without their start-up cost.

`@dataclass(frozen=True)` compiles six or seven functions per class at import
(and, for a class without a docstring, asks `inspect` for a signature): about
0.5 ms a class, measured here, which across oint's fourteen records was most of
oint's own share of a call's start-up. A Record reads its fields from the
class's annotations once, in `__init_subclass__`, and shares one `__init__`,
`__eq__`, `__hash__` and `__repr__` among all records: nothing is compiled.

    class Endpoint(Record):
        base: str
        token: str | None = None

Fields keep the order of the annotations (a subclass's after its base's);
a class attribute is the field's default (defaults are shared, so they must be
immutable, as every field of a record is). `kw_only=True` in the class line
makes the constructor keyword-only. `fields(record)` and `record.replace(...)`
stand for dataclasses' `fields` and `replace`.

Type checkers see a record as the dataclass it is declared like (PEP 681's
`dataclass_transform`, named only while type checking: at run time it costs
nothing), so each record's constructor is checked field by field.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self, dataclass_transform
else:

    def dataclass_transform(**_options: object) -> object:
        return lambda cls: cls


_MISSING = object()


@dataclass_transform(eq_default=True, frozen_default=True)
class Record:
    _fields: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}
    _kw_only: bool = False

    def __init_subclass__(cls, kw_only: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        annotations = cls.__dict__.get("__annotations__")  # noqa: RUF063 - own annotations only, never inherited ones
        if annotations is None and "__annotate__" in cls.__dict__:  # Python 3.14: evaluated when asked
            annotations = cls.__annotations__
        own = [name for name in annotations or () if not name.startswith("_")]
        cls._fields = (*cls._fields, *(name for name in own if name not in cls._fields))
        cls._defaults = {**cls._defaults, **{name: cls.__dict__[name] for name in own if name in cls.__dict__}}
        cls._kw_only = kw_only or cls._kw_only

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self._fields
        if args and self._kw_only:
            raise TypeError(f"{type(self).__name__}() takes keyword arguments only")
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes at most {len(names)} arguments ({len(args)} given)")
        values = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name not in names:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
            values[name] = value
        for name in names:
            value = values.get(name, self._defaults.get(name, _MISSING))
            if value is _MISSING:
                raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
            object.__setattr__(self, name, value)
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __repr__(self) -> str:
        inside = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({inside})"

    def replace(self, **changes: Any) -> "Self":
        """A copy with `changes`, as dataclasses.replace."""
        return self.__class__(**{**dict(zip(self._fields, self._values(), strict=True)), **changes})

    def as_dict(self) -> dict[str, Any]:
        """{field: value}, one level deep (as dataclasses.asdict, without recursing)."""
        return dict(zip(self._fields, self._values(), strict=True))


def fields(record: "Record | type[Record]") -> tuple[str, ...]:
    """The field names of a record or record class, in order."""
    return record._fields
