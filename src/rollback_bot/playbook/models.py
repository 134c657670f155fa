"""Pydantic models of a playbook file: everything a team decides before launch."""

from __future__ import annotations

import itertools
import os
import re
from datetime import time, timedelta
from functools import cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rollback_bot.playbook.conditions import (
    Compare,
    Condition,
    parse_comparison,
    parse_condition,
    signals_in,
)
from rollback_bot.playbook.durations import format_duration, parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
ConditionField = Annotated[Condition, PlainValidator(parse_condition)]
ComparisonField = Annotated[Compare, PlainValidator(parse_comparison)]
Severity = Literal["critical", "major", "minor"]
NoDataPolicy = Literal["keep", "reset", "breach", "hold"]
_COUNT = re.compile(r"^\s*(\d+)\s+of\s+(\d+)\s*$")


def parse_count(value: object) -> tuple[int, int]:
    """'3 of 5' -> (3, 5): breached in at least 3 of the last 5 evaluations that had data."""
    if isinstance(value, tuple):
        return value
    m = _COUNT.match(str(value))
    if not m:
        raise ValueError(f"write breaches as '<N> of <M>', e.g. '3 of 5'; got {value!r}")
    n, of = int(m.group(1)), int(m.group(2))
    if not 1 <= n <= of <= 100:
        raise ValueError(f"breaches '{value}': need 1 <= N <= M <= 100")
    return n, of


BreachCount = Annotated[tuple[int, int], PlainValidator(parse_count)]
BUILTIN_SIGNALS = ("ack_minutes", "incident_minutes")
_SLUG = r"^[a-z0-9][a-z0-9_-]*$"


class Strict(BaseModel):
    # NaN or infinity in any number (a weight, a gate, a bound) would make its rule never, or always, hold
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False)


_USER_ID = r"^[UW][A-Z0-9]+$"
_GROUP_ID = r"^S[A-Z0-9]+$"


class RoleSpec(Strict):
    users: list[Annotated[str, Field(pattern=_USER_ID)]] = []
    groups: list[Annotated[str, Field(pattern=_GROUP_ID)]] = []


_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def env_references(value: str) -> str:
    """`value` unchanged; ValueError for a `${...}` that would never be expanded (and so be sent as it is)."""
    for name in _PLACEHOLDER.findall(value):
        if not _ENV_NAME.match(name):
            raise ValueError(f"'${{{name}}}' is not expanded: write environment variables as ${{UPPER_CASE}}")
    return value


EnvText = Annotated[str, AfterValidator(env_references)]


def http_url(value: str) -> str:
    """An http(s) URL, or one that begins with a ${VAR} or a {{ template }} (which give the rest)."""
    if not re.match(r"(?i)^(https?://[^/\s]+|\$\{|\{\{)", value.strip()):
        raise ValueError(f"{value!r} is not an http:// or https:// URL (e.g. http://host:9090)")
    return value


HttpUrl = Annotated[EnvText, AfterValidator(http_url)]


class TlsSpec(Strict):
    """How to trust an HTTPS endpoint: the system CAs, a CA file of your own, or (last resort) nothing."""

    verify: StrictBool = True
    ca_file: str | None = Field(default=None, description="PEM file; a relative path is relative to the playbook file")

    @field_validator("ca_file")
    @classmethod
    def _beside_playbook(cls, v: str | None, info: ValidationInfo) -> str | None:
        folder = (info.context or {}).get("folder")
        if v is None or folder is None or os.path.isabs(v):
            return v
        return os.path.normpath(os.path.join(folder, v))


class BasicAuthSpec(Strict):
    username: EnvText = Field(min_length=1)
    password: EnvText = Field(min_length=1, description="use ${ENV_VAR}; never logged")


def header_values(v: dict[str, str]) -> dict[str, str]:
    """Headers as written: valid names, values on one line, `${UPPER_CASE}` references only."""
    for name, value in v.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid HTTP header name")
        if "\r" in value or "\n" in value:
            raise ValueError(f"header '{name}' has a line break in its value")
        env_references(value)
    return v


Headers = Annotated[dict[str, str], AfterValidator(header_values)]


class ConnectionSpec(Strict):
    """Headers, basic auth and TLS of an HTTP source; header values and credentials may use ${ENV_VAR}."""

    headers: Headers = {}
    basic_auth: BasicAuthSpec | None = None
    tls: TlsSpec = TlsSpec()

    @model_validator(mode="after")
    def _one_authorization(self) -> ConnectionSpec:
        if self.basic_auth is not None and any(k.lower() == "authorization" for k in self.headers):
            raise ValueError("use basic_auth or an Authorization header, not both")
        return self


def _url_or_mapping(value: object) -> object:
    return {"url": value} if isinstance(value, str) else value


class PrometheusSpec(ConnectionSpec):
    url: HttpUrl = Field(min_length=1, description="base URL, e.g. http://prometheus:9090 or https://.../api/prom")


class SourcesSpec(Strict):
    prometheus: Annotated[PrometheusSpec | None, BeforeValidator(_url_or_mapping)] = None  # a URL, or url + auth


_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def label_matchers(v: dict[str, str]) -> dict[str, str]:
    """Alertmanager label matchers as written: Prometheus label names, string values."""
    for name in v:
        if not _LABEL_NAME.match(name):
            raise ValueError(f"'{name}' is not a Prometheus label name (letters, digits and _, not first a digit)")
    return v


class AlertmanagerSpec(Strict):
    """A signal pushed by Alertmanager's webhook (POST /alertmanager): the number of alerts firing whose labels
    include every `match` pair; 0 once they resolved; no data until one was received."""

    match: Annotated[dict[str, str], AfterValidator(label_matchers)] = Field(
        min_length=1, description="labels an alert must have, e.g. {alertname: ModelErrorRate, service: x}"
    )
    max_age: Duration | None = Field(
        default=None,
        description="a firing alert not sent again for this long is no data (stale); default: it holds until it "
        "resolves or its endsAt passes. Set it above Alertmanager's repeat_interval",
    )

    @field_validator("max_age")
    @classmethod
    def _positive(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v <= timedelta(0):
            raise ValueError("max_age must be positive")
        return v

    def describe(self) -> str:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in self.match.items()) + "}"


class SignalSpec(ConnectionSpec):
    """Where one metric is read from: exactly one of prometheus, http (+json), builtin, alertmanager."""

    prometheus: str | None = None
    http: HttpUrl | None = None
    json_path: str | None = Field(None, alias="json")
    builtin: Literal["ack_minutes", "incident_minutes"] | None = None
    alertmanager: AlertmanagerSpec | None = None
    numeric_strings: StrictBool = Field(False, description='accept numbers sent as JSON strings, e.g. "0.5"')
    every: Duration = timedelta(seconds=30)
    timeout: Duration = timedelta(seconds=5)
    max_age: Duration | None = Field(None, description="a Prometheus sample stamped longer ago is no data")
    lost_after: int = Field(3, ge=1, description="consecutive failed reads before 'signal lost'")
    silent_after: int = Field(5, ge=1, description="consecutive reads without data before 'signal silent'")
    unit: str = ""
    label: str | None = None
    segments: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        [],
        description="read per segment: Prometheus, the labels keying the answer's series; JSON, one name, and the "
        "path points at an object of segment -> number",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_source(self) -> SignalSpec:
        kinds = [k for k in ("prometheus", "http", "builtin", "alertmanager") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a signal needs exactly one of 'prometheus', 'http', 'builtin' or 'alertmanager'")
        if self.http is not None and not self.json_path:
            raise ValueError("an http signal needs 'json': the field path in the response, e.g. kpi.accuracy")
        if self.json_path is not None and self.http is None:
            raise ValueError("'json' only applies to an http signal")
        if self.http is None:
            given = [k for k in ("headers", "basic_auth", "tls", "numeric_strings") if k in self.model_fields_set]
            if given:
                hint = "; for Prometheus, set it under sources.prometheus" if self.prometheus is not None else ""
                raise ValueError(f"'{given[0]}' only applies to an http signal{hint}")
        if self.max_age is not None and self.alertmanager is not None:
            raise ValueError("write max_age under alertmanager: (how long a firing alert holds unless sent again)")
        if self.max_age is not None and self.prometheus is None:
            raise ValueError("'max_age' only applies to a prometheus signal (JSON answers carry no sample time)")
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        if self.timeout >= self.every:
            raise ValueError("timeout must be shorter than every")
        if self.segments and self.builtin is not None:
            raise ValueError("a builtin signal has no segments")
        if self.segments and self.alertmanager is not None:
            raise ValueError("an alertmanager signal has no segments: give each segment a signal of its own")
        if len(self.segments) > 1 and self.http is not None:
            raise ValueError("a JSON signal has one segment name: its path points at an object of segment -> number")
        if len(set(self.segments)) != len(self.segments):
            raise ValueError("segments are named once each")
        return self

    @property
    def compared(self) -> bool:
        """Read once per version (baseline and candidate of a rollout): `{version}` in its query, URL or path."""
        return any(VERSION in (text or "") for text in (self.prometheus, self.http, self.json_path))

    @property
    def sample_max_age(self) -> timedelta:
        """How old a Prometheus sample may be and still count: max_age, or two intervals plus the timeout."""
        return self.max_age if self.max_age is not None else 2 * self.every + self.timeout

    @property
    def fetched(self) -> bool:
        """Read by the bot from a source over HTTP (Prometheus or JSON), not computed or pushed to it."""
        return self.prometheus is not None or self.http is not None

    @property
    def kind(self) -> str:
        if self.alertmanager is not None:
            return "alertmanager"
        return "prometheus" if self.prometheus else "http" if self.http else "builtin"


class TriggerSpec(Strict):
    """One rollback criterion. Exactly one of when / all / any / at_least+of / kpi."""

    when: ConditionField | None = None
    all: list[ConditionField] | None = None
    any: list[ConditionField] | None = None
    at_least: int | None = None
    of: list[ConditionField] | None = None
    kpi: dict[str, float] | None = None
    below: float | None = Field(None, description="KPI score under this: roll back")
    hold_below: float | None = Field(None, description="KPI score under this (but not below): hold")
    for_: Duration = Field(timedelta(0), alias="for")
    breaches: BreachCount | None = Field(None, description="'N of M': fire when N of the last M evaluations breached")
    fail_fast: ConditionField | None = Field(None, description="fire at once, skipping for/breaches, when this holds")
    keep_firing_for: Duration = Field(timedelta(0), description="stay firing until healthy this long (damps flapping)")
    no_data: NoDataPolicy = "keep"
    no_data_for: Duration | None = Field(None, description="how long no data lasts before no_data breach/hold acts")
    max_missing: float = Field(0.0, ge=0, lt=0.5, description="KPI: share of the weight that may be missing")
    severity: Severity = "major"
    description: str = ""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, arbitrary_types_allowed=True, allow_inf_nan=False
    )

    @model_validator(mode="after")
    def _one_form(self) -> TriggerSpec:
        forms = [
            k
            for k, v in (("when", self.when), ("all", self.all), ("any", self.any), ("kpi", self.kpi))
            if v is not None
        ]
        if self.at_least is not None or self.of is not None:
            forms.append("at_least")
        if len(forms) != 1:
            raise ValueError("a trigger needs exactly one of 'when', 'all', 'any', 'at_least' + 'of', or 'kpi'")
        if "at_least" in forms:
            parse_condition({"at_least": self.at_least, "of": self.of})
        for form in ("all", "any"):  # an empty list is no condition
            if getattr(self, form) is not None:
                parse_condition({form: list(getattr(self, form))})
        if self.kpi is not None:
            if not self.kpi:
                raise ValueError("'kpi' needs at least one signal: weight")
            if self.below is None:
                raise ValueError("a kpi trigger needs 'below': the score under which to roll back")
            if self.hold_below is not None and self.hold_below < self.below:
                raise ValueError("hold_below must be at least 'below' (hold comes before rollback)")
        elif self.below is not None or self.hold_below is not None or self.max_missing:
            raise ValueError("'below', 'hold_below' and 'max_missing' only apply to a 'kpi' trigger")
        if self.breaches is not None and self.for_:
            raise ValueError("use either 'for' (continuously) or 'breaches' (N of the last M), not both")
        if self.no_data == "breach" and self.no_data_for is None:
            raise ValueError("no_data: breach needs no_data_for: how long no data lasts before it counts, e.g. 10m")
        if self.no_data_for is not None and self.no_data not in ("breach", "hold"):
            raise ValueError("no_data_for only applies to no_data: breach or no_data: hold")
        return self

    @cached_property
    def condition(self) -> Condition | None:
        """The boolean condition (None for a KPI gate); built once, as every evaluation reads it."""
        if self.when is not None:
            return self.when
        if self.all is not None:
            return parse_condition({"all": list(self.all)})
        if self.any is not None:
            return parse_condition({"any": list(self.any)})
        if self.at_least is not None:
            return parse_condition({"at_least": self.at_least, "of": list(self.of or [])})
        return None

    @property
    def signals(self) -> list[str]:
        """The signals this trigger reads, in order, once each (fail_fast included)."""
        if self.kpi is not None:
            names = list(self.kpi)
        else:
            assert self.condition is not None
            names = list(signals_in(self.condition))
        if self.fail_fast is not None:
            names += signals_in(self.fail_fast)
        return list(dict.fromkeys(names))

    def describe(self) -> str:
        return self._described

    @cached_property
    def _described(self) -> str:
        if self.kpi is not None:
            terms = " ".join(f"{'-' if w < 0 else '+'} {abs(w):g}*{s}" for s, w in self.kpi.items()).removeprefix("+ ")
            gate = f"rollback below {self.below:g}"
            if self.hold_below is not None:
                gate = f"hold below {self.hold_below:g}, {gate}"
            return f"KPI {terms}: {gate}"
        text = str(self.condition)
        if self.for_:
            text += f" for {format_duration(self.for_)}"
        if self.breaches is not None:
            text += f" in {self.breaches[0]} of {self.breaches[1]} evaluations"
        return text


def _env_references_in(value: Any) -> Any:
    """`env_references` on every string of a JSON-like value."""
    if isinstance(value, str):
        env_references(value)
    elif isinstance(value, dict):
        for v in value.values():
            _env_references_in(v)
    elif isinstance(value, list):
        for v in value:
            _env_references_in(v)
    return value


class WebhookSpec(Strict):
    """Where an action goes. Url, header values and body strings may use ${ENV_VAR} (expanded when sent,
    required at start-up, never recorded); url and body strings are Jinja2 first."""

    url: HttpUrl
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    body: Annotated[dict[str, Any], AfterValidator(_env_references_in)] = {}
    headers: Headers = Field({}, description="values may use ${ENV_VAR}; never logged")
    timeout: Duration = timedelta(seconds=10)
    retries: int = Field(3, ge=0, le=10)


class LapseSpec(Strict):
    """When an approval stops standing before its action starts, and what happens then. An approval is given
    on evidence (every signal's value at the click); when that evidence moves materially, or the approval is
    old, it lapses: it is withdrawn, the approvers are told why and asked again. Never "wait forever"."""

    after: Duration | None = Field(
        default=timedelta(hours=2), description="an approval this old lapses (the action has not started); null: never"
    )
    when: list[ComparisonField] = Field(
        default=[], description="lapses when one of these holds now but did not when approved, e.g. error_rate < 0.01"
    )
    trigger_cleared: bool = Field(
        default=False, description="lapses when the trigger that opened the incident has cleared"
    )
    then: Literal["ask_again", "escalate"] = Field(
        default="ask_again", description="ask_again: mention whose approval lapsed; escalate: also the escalate roles"
    )
    escalate: list[str] = []  # roles mentioned as well when then: escalate

    @field_validator("after")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("after must be positive (or null: approvals never lapse by age)")
        return value

    @model_validator(mode="after")
    def _escalate_needs_roles(self) -> LapseSpec:
        if self.then == "escalate" and not self.escalate:
            raise ValueError("then: escalate needs escalate: [roles] (whom to bring in when an approval lapses)")
        return self


class ActionSpec(Strict):
    id: Annotated[str, Field(pattern=_SLUG)]
    label: str = Field(max_length=60)
    requires: list[str] = Field(min_length=1, description="one approval per entry, by distinct people")
    stages: list[float] | None = Field(None, min_length=1)
    stage_every: Duration = timedelta(minutes=10)
    webhook: WebhookSpec
    lapse: LapseSpec = LapseSpec()

    @field_validator("stages")
    @classmethod
    def _stages_increase(cls, stages: list[float] | None) -> list[float] | None:
        if stages is not None:
            problems = []  # both at once: every problem in one run of `check`
            if any(b <= a for a, b in itertools.pairwise(stages)):
                problems.append("stages must increase, e.g. [1, 10, 50, 100]")
            if any(not 0 < s <= 100 for s in stages):
                problems.append("stages are percentages of traffic between 0 and 100")
            if problems:
                raise ValueError("; ".join(problems))
        return stages

    @property
    def stage_list(self) -> list[float]:
        """Stages to run; a plain action has one stage, 100."""
        return list(self.stages) if self.stages else [100.0]


_WINDOW = re.compile(r"^\s*(\S+?)\s*-\s*(\S+)\s*$")


def parse_window(value: object) -> tuple[timedelta, timedelta]:
    if isinstance(value, tuple):
        return value
    m = _WINDOW.match(str(value))
    if not m:
        raise ValueError(f"bad window '{value}': write start-end, e.g. 0h-2h")
    start, end = parse_duration(m.group(1)), parse_duration(m.group(2))
    if end <= start:
        raise ValueError(f"window '{value}' ends before it starts")
    return start, end


Window = Annotated[tuple[timedelta, timedelta], PlainValidator(parse_window)]


class StepSpec(Strict):
    name: str = Field(min_length=1, max_length=120)
    window: Window
    watch: list[ComparisonField] = []
    actions: list[ActionSpec] = []
    comms: list[str] = []
    notes: str = ""

    @property
    def start(self) -> timedelta:
        return self.window[0]

    @property
    def end(self) -> timedelta:
        return self.window[1]

    def window_text(self) -> str:
        start = format_duration(self.start) if self.start else "0h"
        return f"{start}-{format_duration(self.end)}"


class AcknowledgeSpec(Strict):
    requires: list[str] = ["incident_commander", "responder"]
    within: Duration = timedelta(minutes=15)
    escalate: list[str] = []  # roles added to each further reminder while unacknowledged


class HoldSpec(Strict):
    requires: list[str] = ["incident_commander"]


class RemindersSpec(Strict):
    before_step_end: Duration = timedelta(minutes=15)  # remind this long before a step ends, actions not done
    escalate: list[str] = []  # roles also mentioned in step-end reminders


class ResolveSpec(Strict):
    requires: list[str] = ["incident_commander"]


VERSION = "{version}"  # in a compared signal's query, URL or JSON path: the rollout's baseline or candidate


def _increasing(percents: list[float]) -> None:
    if any(b <= a for a, b in itertools.pairwise(percents)):
        raise ValueError("stages must increase, e.g. 10, 25, 50, 100")


class RolloutStageSpec(Strict):
    percent: float = Field(gt=0, le=100, description="share of traffic on the candidate in this stage")
    min_duration: Duration = Field(timedelta(0), description="no GO before the stage has run this long")
    min_sample: int = Field(0, ge=0, description="no verdict before the candidate served this many (the sample)")


class RolloutRuleSpec(Strict):
    """A guardrail or hold signal: the candidate worse than the baseline by more than `by` (and the difference
    significant), or the candidate's own value above `above` (a drift or bias score; `warn` only shows)."""

    signal: str
    worse: Literal["higher", "lower"] | None = None
    by: float | None = Field(None, ge=0)
    above: float | None = None
    warn: float | None = None

    @model_validator(mode="after")
    def _one_form(self) -> RolloutRuleSpec:
        relative = self.worse is not None or self.by is not None
        absolute = self.above is not None or self.warn is not None
        if relative == absolute:
            raise ValueError(
                "a rollout rule needs either 'worse' + 'by' (against the baseline) or 'above' (the "
                "candidate's own value, e.g. a drift score), not both"
            )
        if relative and (self.worse is None or self.by is None):
            raise ValueError("'worse' (higher or lower) and 'by' go together: worse: higher, by: 0.05")
        if absolute and self.above is None:
            raise ValueError("'warn' needs 'above': warn shows, above decides")
        if self.warn is not None and self.above is not None and self.warn >= self.above:
            raise ValueError("'warn' must be below 'above' (a warning comes before a hold)")
        return self

    def describe(self) -> str:
        if self.above is not None:
            warn = f" (warn above {self.warn:g})" if self.warn is not None else ""
            return f"{self.signal} above {self.above:g}{warn}"
        return f"{self.signal} {self.worse} than baseline by more than {self.by:g}"


class RolloutGateSpec(Strict):
    """The weighted KPI, sum of w_i * m_i, of the candidate minus the baseline's: under hold_below, HOLD; under
    rollback_below, ROLLBACK."""

    kpi: dict[str, float] = Field(min_length=1)
    hold_below: float
    rollback_below: float

    @model_validator(mode="after")
    def _ordered(self) -> RolloutGateSpec:
        zero = [name for name, w in self.kpi.items() if w == 0]
        if zero:
            raise ValueError(f"kpi weight of '{zero[0]}' is 0: leave it out, or list it under diagnostics")
        if self.rollback_below > self.hold_below:
            raise ValueError("rollback_below must not be above hold_below (a hold comes before a rollback)")
        return self

    def describe(self) -> str:
        terms = " ".join(f"{'-' if w < 0 else '+'} {abs(w):g}*{s}" for s, w in self.kpi.items()).removeprefix("+ ")
        gate = f"hold below {self.hold_below:g}, roll back below {self.rollback_below:g}"
        return f"KPI {terms}, candidate minus baseline: {gate}"


class AdvanceSpec(Strict):
    requires: list[str] = []
    auto: StrictBool = Field(False, description="advance by itself when the gate says GO")

    @model_validator(mode="after")
    def _someone(self) -> AdvanceSpec:
        if not self.auto and not self.requires:
            raise ValueError("advance needs 'requires' (the roles that may advance) or 'auto: true'")
        return self


class RolloutSpec(Strict):
    """A phased rollout guarded forward: stages of traffic on the candidate, each gated by the weighted KPI of
    candidate against baseline, by segment, with guardrails (roll back), holds (stop and investigate) and
    diagnostics (shown, never decide)."""

    baseline: str = Field("baseline", min_length=1, description="what {version} becomes for the baseline")
    candidate: str = Field("candidate", min_length=1, description="what {version} becomes for the candidate")
    sample: str = Field(description="a compared signal counting requests served; its growth is a stage's sample")
    stages: list[RolloutStageSpec] = Field(min_length=1)
    advance: AdvanceSpec
    hold: HoldSpec = HoldSpec()
    rollback: HoldSpec = HoldSpec()
    webhook: WebhookSpec = Field(description="sets the candidate's traffic share; body may use {{ percent }}")
    gate: RolloutGateSpec
    guardrails: list[RolloutRuleSpec] = []
    holds: list[RolloutRuleSpec] = []
    diagnostics: list[str] = []
    alpha: float = Field(0.05, gt=0, lt=0.5, description="a difference counts when the test's p-value is under this")
    min_points: int = Field(3, ge=2, description="readings of each version in a stage before any comparison")

    @field_validator("stages")
    @classmethod
    def _stages_increase(cls, v: list[RolloutStageSpec]) -> list[RolloutStageSpec]:
        _increasing([s.percent for s in v])
        return v

    @model_validator(mode="after")
    def _versions(self) -> RolloutSpec:
        if self.baseline == self.candidate:
            raise ValueError("baseline and candidate must differ")
        return self

    @property
    def signals(self) -> list[str]:
        names = [self.sample, *self.gate.kpi, *(r.signal for r in self.guardrails), *(r.signal for r in self.holds)]
        return list(dict.fromkeys([*names, *self.diagnostics]))


class DrillSpec(Strict):
    """Targets the drill holds the team to (simulated time)."""

    detect_within: Duration = timedelta(minutes=15)
    step_tolerance: Duration = timedelta(minutes=15)
    approve_within: Duration = timedelta(minutes=30)
    recover_within: Duration = timedelta(hours=2)


_CLOCK_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def parse_clock_time(value: object) -> time:
    """'09:00' -> time(9, 0): a wall-clock time of day, 24-hour, HH:MM."""
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f'bad time {value!r}: quote the time of day, e.g. "10:30" (YAML reads 10:30 as a number)')
    m = _CLOCK_TIME.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f'bad time {value!r}: write the time of day as HH:MM, 24-hour, e.g. "09:00" (quoted)')
    return time(int(m.group(1)), int(m.group(2)))


def time_zone(value: object) -> str:
    """An IANA zone name zoneinfo knows, e.g. Europe/Paris."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a time zone name like Europe/Paris, got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{value}': use an IANA name, e.g. Europe/Paris or UTC") from None
    return value


ClockTime = Annotated[time, PlainValidator(parse_clock_time)]
ZoneName = Annotated[str, PlainValidator(time_zone)]


class PanicDriftSpec(Strict):
    """Against the baseline: each checked signal's value today against the median of its values in the passed
    runs of the last `days` days. A change larger than `max_change` (a fraction: 0.25 is +/-25%) fails the run,
    naming what drifted, even while every threshold holds: hidden drift before launch."""

    max_change: float = Field(gt=0, description="the largest change from the baseline that passes, e.g. 0.25")
    days: int = Field(default=7, ge=1, le=90)
    min_runs: int = Field(default=3, ge=1, description="passed runs needed before the baseline is used")


class PanicRunSpec(Strict):
    """A daily check before launch: at `at` in `zone`, read the named signals and test each threshold; a pass
    is posted with the figures, a failure opens a pre-launch alert someone must acknowledge."""

    at: ClockTime
    zone: ZoneName = "UTC"
    checks: list[ComparisonField] = Field(min_length=1, description="what must hold, e.g. error_rate < 0.01")
    acknowledge: list[str] = Field(
        ["incident_commander", "responder"], min_length=1, description="roles that may acknowledge a failure"
    )
    remind_every: Duration | None = Field(
        timedelta(minutes=30), description="remind in the channel while a failure is unacknowledged; null: never"
    )
    drift: PanicDriftSpec | None = None

    @field_validator("remind_every")
    @classmethod
    def _positive(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v <= timedelta(0):
            raise ValueError("remind_every must be positive (or null: never remind)")
        return v

    @property
    def signals(self) -> list[str]:
        return list(dict.fromkeys(c.signal for c in self.checks))


class Playbook(Strict):
    name: Annotated[str, Field(pattern=_SLUG)]
    service: str
    channel: str
    description: str = ""
    templates: str = Field("../templates", description="template folder, relative to the playbook file")
    sources: SourcesSpec = SourcesSpec()
    acknowledge: AcknowledgeSpec = AcknowledgeSpec()
    resolve: ResolveSpec = ResolveSpec()
    hold: HoldSpec = HoldSpec()
    reminders: RemindersSpec = RemindersSpec()
    roles: dict[str, RoleSpec]
    signals: dict[str, SignalSpec]
    triggers: dict[str, TriggerSpec] = Field(min_length=1)
    ladder: list[StepSpec] = Field(min_length=1)
    drill: DrillSpec = DrillSpec()
    rollout: RolloutSpec | None = None
    panic_run: PanicRunSpec | None = None

    @cached_property
    def signal_labels(self) -> dict[str, str]:
        """Signal -> its `label` (the display name people read), for the signals that have one."""
        return {name: spec.label for name, spec in self.signals.items() if spec.label}

    def action(self, action_id: str) -> tuple[int, ActionSpec]:
        for index, step in enumerate(self.ladder):
            for action in step.actions:
                if action.id == action_id:
                    return index, action
        raise KeyError(action_id)

    @property
    def duration(self) -> timedelta:
        return self.ladder[-1].end
