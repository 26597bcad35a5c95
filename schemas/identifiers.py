"""Identifiers of the national portal, parsed once and then trusted.

Each is a `str` subclass, so it serializes as itself and compares with plain strings, and it
validates inside pydantic models through `__get_pydantic_core_schema__`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar, Self

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from schemas.errors import ContractError

_AGENCY = r"[0-9A-Z]{3}\.[0-9A-Z]{2}\.[0-9A-Z]{2}\.[GH][0-9]{2}"


class _Identifier(str):
    pattern: ClassVar[re.Pattern[str]]
    rule: ClassVar[str]
    label: ClassVar[str]
    # Agency and procedure codes repeat in every event, a dossier code twice in each: the
    # parsed ones are kept, so the bus pays for a regular expression only on news.
    _known: ClassVar[dict[str, Any]]
    _KNOWN_MAX: ClassVar[int] = 10_000

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._known = {}

    @classmethod
    def parse(cls, text: object) -> Self:
        """The identifier, or a ContractError naming the value and the rule it breaks."""
        try:
            return cls._validate(text)
        except ValueError as error:
            raise ContractError.single(cls.label, text, str(error)) from None

    @classmethod
    def _validate(cls, text: object) -> Self:
        # Inside a model, pydantic reports the field and the value; the message is the rule.
        if isinstance(text, cls):
            return text
        if type(text) is str and (known := cls._known.get(text)) is not None:
            return known  # type: ignore[no-any-return]
        if not isinstance(text, str) or cls.pattern.fullmatch(text) is None:
            raise ValueError(cls.rule)
        identifier = cls(text)
        identifier._check()
        if len(cls._known) >= cls._KNOWN_MAX:
            cls._known.clear()
        cls._known[text] = identifier
        return identifier

    def _check(self) -> None:
        """Rules a regular expression cannot say; raise ValueError."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls._validate,
            core_schema.str_schema(),
            serialization=core_schema.to_string_ser_schema(),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "pattern": f"^{cls.pattern.pattern}$", "description": cls.rule}


class AgencyCode(_Identifier):
    """Mã định danh of an agency: `LLL.LL.LL.XNN`, level 1 (the unit) rightmost.

    `000.00.00.H59` is the province itself; the groups to the left name units below it.
    """

    pattern = re.compile(_AGENCY)
    rule = "agency code must look like 000.00.01.H29: three groups, then G or H and 2 digits"
    label = "agency code"

    @property
    def unit(self) -> str:
        """The level-1 group: `H29` for a province, `G01` for a ministry."""
        return self[-3:]

    @property
    def is_ministry(self) -> bool:
        return self[-3] == "G"


class DossierCode(_Identifier):
    """MaHoSo: `<agency code>-<yyMMdd>-<sequence>`, e.g. `000.00.01.H29-240115-0001`."""

    pattern = re.compile(rf"({_AGENCY})-([0-9]{{6}})-([0-9]{{1,10}})")
    _shape: ClassVar[re.Pattern[str]] = re.compile(r"(.+)-([0-9]{6})-([0-9]{1,10})")
    rule = "dossier code must be <agency code>-<yyMMdd>-<sequence>, e.g. 000.00.01.H29-240115-0001"
    label = "dossier code"

    @classmethod
    def _validate(cls, text: object) -> DossierCode:
        try:
            return super()._validate(text)
        except ValueError:
            # Name the broken part: "the agency part is malformed" helps more than "no match".
            shape = cls._shape.fullmatch(text) if isinstance(text, str) else None
            if shape is not None and AgencyCode.pattern.fullmatch(shape[1]) is None:
                raise ValueError(
                    f"its agency part {shape[1]!r} is malformed: {AgencyCode.rule}"
                ) from None
            raise

    def _check(self) -> None:
        self.day  # noqa: B018 -- raises when the date does not exist

    # The agency part is fixed-width (13 characters), so slicing finds the parts.
    @property
    def agency(self) -> AgencyCode:
        return AgencyCode(self[:13])

    @property
    def unit(self) -> str:
        return self[10:13]

    @property
    def day(self) -> date:
        yymmdd = self[14:20]
        try:
            return date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
        except ValueError:
            raise ValueError(f"{yymmdd} is not a real date (yyMMdd)") from None

    @property
    def sequence(self) -> str:
        return self[21:]


class ProcedureCode(_Identifier):
    """MaTTHC: `1.000894`, or localised to an agency as `3.000181.000.00.00.H22`."""

    pattern = re.compile(rf"[0-9]\.[0-9]{{6}}(\.{_AGENCY})?")
    rule = "procedure code must look like 1.000894, or 1.000894.000.00.00.H22 when localised"
    label = "procedure code"

    @property
    def national(self) -> str:
        """The national catalogue code, without any local suffix."""
        return self[:8]

    @property
    def agency(self) -> AgencyCode | None:
        return AgencyCode(self[9:]) if len(self) > 8 else None
