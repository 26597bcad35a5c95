"""A connector's configuration file (TOML), as a provincial or ministry IT team writes it.

    [connector]     who publishes (name, kind, agency), where its state lives, how often
    [connector.seq] how a record's version becomes the event's `seq`
    [source]        the kind's own settings (`connectors.kinds`)
    [mapping]       local field names, local status codes → the contract

Secrets never live here: the broker URL, the signing key and the source's credentials come
from the environment (the `*_env` settings name the variables). Every mistake is reported as
one line naming the key, e.g. `mapping.status.DANG_XU_LY: 11 is not a national status code`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from connectors.source import Source
from schemas import AgencyCode, Dossier, DossierStatus
from schemas.errors import ContractError

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,62}$")]


class ConfigError(Exception):
    """The file cannot be used; `problems` holds one readable line per mistake."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeqRule(_Table):
    """`field`: the record field holding its version. `from = "number"` (the default) takes
    it as an integer; `from = "timestamp"` takes a local time and counts microseconds, for
    systems that keep only an updated-at column."""

    field: str
    from_: str = Field("number", alias="from", pattern="^(number|timestamp)$")


class ConnectorTable(_Table):
    name: Name
    kind: str
    agency: AgencyCode
    timezone: str = "Asia/Ho_Chi_Minh"
    state_dir: Path
    poll_interval: float = Field(2.0, gt=0)
    batch_size: int = Field(500, ge=1, le=10_000)
    heartbeat_interval: float = Field(30.0, gt=0)
    signing_key_id: str | None = None
    seq: SeqRule

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (e.g. Asia/Ho_Chi_Minh)") from None
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ListMapping(_Table):
    from_: str = Field(alias="from")
    fields: dict[str, str]


class MappingTable(_Table):
    fields: dict[str, str]
    lists: dict[str, ListMapping] = {}
    status: dict[str, int]
    constants: dict[str, Any] = {}

    @model_validator(mode="after")
    def _known_targets(self) -> Self:
        problems: list[str] = []
        for path in [*self.fields, *self.constants]:
            if not _is_contract_path(path):
                problems.append(f"{path!r} is not a field of the contract's dossier")
        for name, mapping in self.lists.items():
            model = _list_model(name)
            if model is None:
                problems.append(f"lists.{name}: the dossier has no list {name!r}")
                continue
            for sub in mapping.fields:
                if sub not in model.model_fields:
                    problems.append(f"lists.{name}.fields.{sub}: not a field of {model.__name__}")
        valid = {int(s) for s in DossierStatus}
        for local, national in self.status.items():
            if national not in valid:
                problems.append(f"status.{local}: {national} is not a national status code")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ConnectorConfig(_Table):
    connector: ConnectorTable
    source: dict[str, Any] = {}
    mapping: MappingTable

    @property
    def unit(self) -> str:
        return self.connector.agency.unit


def load_config(path: str | Path) -> ConnectorConfig:
    """The validated config, or ConfigError with every problem found."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, ["no such file"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(path, [f"not valid TOML: {error}"]) from None
    try:
        config = ConnectorConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(path, _lines(error)) from None
    if not config.connector.state_dir.is_absolute():
        # Relative to the file, so that a config works from any working directory.
        state_dir = (Path(path).parent / config.connector.state_dir).resolve()
        table = config.connector.model_copy(update={"state_dir": state_dir})
        config = config.model_copy(update={"connector": table})
    return config


def make_source(config: ConnectorConfig, path: str | Path = "config") -> Source:
    """The kind's source, built from the `[source]` table; ConfigError when it is wrong."""
    from connectors.kinds import KINDS

    kind = KINDS.get(config.connector.kind)
    if kind is None:
        known = ", ".join(sorted(KINDS))
        raise ConfigError(
            path, [f"connector.kind: unknown kind {config.connector.kind!r} ({known})"]
        )
    try:
        settings = kind.settings_model.model_validate(config.source)
    except ValidationError as error:
        raise ConfigError(path, [f"source.{line}" for line in _lines(error)]) from None
    return kind(settings)


def _lines(error: ValidationError) -> list[str]:
    lines = []
    for problem in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (a typo?)"
        elif problem["type"] == "missing":
            message = "missing"
        for part in message.split("; "):
            lines.append(f"{where}: {part}" if where else part)
    return lines


def _is_contract_path(path: str) -> bool:
    model: type[BaseModel] = Dossier
    head, _, rest = path.partition(".")
    if head not in model.model_fields:
        return False
    if not rest:
        return True
    return head == "applicant" and rest in Dossier.model_fields["applicant"].annotation.model_fields  # type: ignore[union-attr]


def _list_model(name: str) -> type[BaseModel] | None:
    from schemas import dossier

    models: dict[str, type[BaseModel]] = {
        "documents": dossier.Document,
        "fees": dossier.Fee,
        "other_papers": dossier.OtherPaper,
        "supplements": dossier.Supplement,
        "results": dossier.ResultDocument,
        "progress": dossier.Progress,
    }
    return models.get(name)


def agency_problem(text: str) -> str | None:
    """Why `text` is no agency code, or None."""
    try:
        AgencyCode.parse(text)
    except ContractError as error:
        return str(error)
    return None
