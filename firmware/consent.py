"""The consent questions: which items, in which order, with which labels — from a policy file.

The items are ORCA's field prefixes (``<Item>ConsFlg``/``ConsTime``/``AvailableTime``), so the
terminal can write them into the clinic's files unchanged. Flags: 0 同意なし, 1 同意あり (2 expired and
3 同意取得困難 are the terminal's, never set by the kiosk). A clinic changes the order or drops an
item by editing its own copy of ``consent_policy.toml`` (``[consent] policy`` in config.toml).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from firmware.errors import ConfigError

DEFAULT_POLICY = Path(__file__).with_name("consent_policy.toml")

#: Every item a result may carry (eligibility-interface reference, ORCA names).
KNOWN_ITEMS = ("PharmacistsInfo", "SpecificHealthCheckupsInfo", "DiagnosisInfo", "OperationInfo",
               "DiagnosisName", "InfectiousInfo", "AllergyInfo", "ContraindicationInfo", "TestInfo",
               "PrescriptionInfo")
NO, YES = 0, 1


class ConsentItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    label: str = Field(min_length=1, max_length=120)

    @field_validator("key")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in KNOWN_ITEMS:
            raise ValueError(f"must be one of {', '.join(KNOWN_ITEMS)}")
        return value


class ConsentPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    item: list[ConsentItem] = Field(min_length=1, max_length=len(KNOWN_ITEMS))
    prescription_choice: bool = True
    valid_hours: int = Field(24, ge=1, le=168)

    @field_validator("item")
    @classmethod
    def _unique(cls, items: list[ConsentItem]) -> list[ConsentItem]:
        keys = [i.key for i in items]
        if len(set(keys)) != len(keys):
            raise ValueError("an item is listed twice")
        return items

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(i.key for i in self.item)

    def all(self, flag: int) -> dict[str, int]:
        """Every item with ``flag`` (包括同意: one answer for all)."""
        return {key: flag for key in self.keys}


def load_policy(path: str | Path | None = None) -> ConsentPolicy:
    """Read and validate a policy file (default: the one shipped with the firmware).

    Raises:
        ConfigError: the file is missing, not TOML, or names an unknown or repeated item.
    """
    path = Path(path) if path is not None else DEFAULT_POLICY
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such consent policy file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the consent policy ({exc})") from None
    try:
        return ConsentPolicy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
