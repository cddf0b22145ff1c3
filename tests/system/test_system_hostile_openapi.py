"""schemathesis against the balancer's ``GET /openapi.json``, on a live server (Hypercorn in a
real subprocess).

Every operation the description lists gets generated requests, valid ones (positive) and invalid
ones (negative), and each answer must: never be a 5xx, have a status the description lists, the
content type it declares, and a body matching its schema. A second pass sends no key at all and
accepts only 401 (the description puts every operation behind ``xi-api-key``).

The broker serves no OpenAPI description (its HTTP API is the balancers', relayed; see
``xtts_broker.app``), so there is nothing to run there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from balancer_server import CLIP_VOICE
from hostile_servers import Target, standalone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.timeout(300)

CHECKS = [
    not_a_server_error, status_code_conformance, content_type_conformance,
    response_schema_conformance,
]  # fmt: skip
EXAMPLES = {GenerationMode.POSITIVE: 16, GenerationMode.NEGATIVE: 8}
#: Random voice ids are almost all unknown (404): half the cases use a voice the server has, so
#: the speech endpoints run too.
VOICES = st.none() | st.sampled_from([CLIP_VOICE, "default"])


@pytest.fixture(scope="module")
def target(
    tmp_path_factory: pytest.TempPathFactory, model_files: tuple[Path, Path]
) -> Iterator[Target]:
    with standalone(tmp_path_factory.mktemp("hostile-openapi"), model_files) as target:
        yield target


@pytest.fixture(scope="module")
def schema(target: Target) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(target.http_url + "/openapi.json", timeout=10)


def operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 9, [op.label for op in found]  # speech x4, voices x4, models
    return found


def without_key(case: schemathesis.Case) -> None:
    """Drop any key schemathesis generated for the security scheme."""
    if case.headers:
        case.headers = {k: v for k, v in case.headers.items() if k.lower() != "xi-api-key"}


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda mode: mode.value)
def test_every_operation_answers_within_its_description(
    target: Target, schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    for operation in operations(schema):

        @settings(
            max_examples=EXAMPLES[mode], derandomize=True, database=None, deadline=None,
            phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=operation.as_strategy(generation_mode=mode), voice=VOICES)
        def call(case: schemathesis.Case, voice: str | None) -> None:
            if voice is not None and "voice_id" in (case.path_parameters or {}):
                case.path_parameters = {**(case.path_parameters or {}), "voice_id": voice}
            response = case.call(
                base_url=target.http_url, headers={"xi-api-key": target.key}, timeout=15
            )
            case.validate_response(response, checks=CHECKS)

        call()
    assert target.balancer.process.poll() is None


def test_without_a_key_every_operation_is_401(
    target: Target, schema: schemathesis.BaseSchema
) -> None:
    for operation in operations(schema):

        @settings(
            max_examples=5, derandomize=True, database=None, deadline=None,
            phases=[Phase.generate], suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            without_key(case)
            response = case.call(base_url=target.http_url, timeout=15)
            assert response.status_code == 401, (case.operation.label, response.text[:200])

        call()
