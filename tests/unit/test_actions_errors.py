"""Actions an event may return, and the error hierarchy."""

import pytest
from pydantic import BaseModel, ValidationError

from starmodel import (
    ConcurrencyError,
    ConfigurationError,
    EntityNotFound,
    EventNotFound,
    PermissionDenied,
    StarModelError,
    StoreUnavailable,
    ValidationFailed,
    alert,
    patch_signals,
    redirect,
    script,
    toast,
)
from starmodel.core.actions import Alert, PatchSignals, Redirect, Script, Toast


@pytest.mark.parametrize("variant", ["info", "success", "warning", "error"])
def test_toast_variants(variant):
    made = toast("Saved", variant=variant, duration_ms=1500)
    assert made == Toast("Saved", variant, 1500)


def test_toast_defaults_to_info():
    assert toast("Hello") == Toast("Hello", "info", 4000)


def test_bad_toast_variant_is_refused():
    with pytest.raises(ValueError, match="variant"):
        toast("Hello", variant="danger")  # type: ignore[arg-type]


def test_other_actions():
    assert redirect("/done") == Redirect("/done")
    assert alert("Careful") == Alert("Careful")
    assert script("console.log(1)") == Script("console.log(1)")
    assert patch_signals(ui={"open": True}) == PatchSignals({"ui": {"open": True}})


class _Form(BaseModel):
    age: int
    tags: list[int]


def _pydantic_error() -> ValidationError:
    try:
        _Form.model_validate({"tags": [1, "x"]})
    except ValidationError as exc:
        return exc
    raise AssertionError("expected a validation error")


def test_validation_failed_from_pydantic_has_one_message_per_field():
    failed = ValidationFailed.from_pydantic(_pydantic_error(), "Bad form")
    assert set(failed.errors) == {"age", "tags.1"}
    assert failed.errors["age"] == "Field required"
    assert "integer" in failed.errors["tags.1"]
    assert failed.message == "Bad form"
    assert failed.status_code == 422
    assert str(failed).startswith("Bad form: age: Field required; tags.1: ")


def test_validation_failed_without_field_errors_is_just_its_message():
    assert str(ValidationFailed({}, "Nope")) == "Nope"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ConfigurationError, 500),
        (EntityNotFound, 404),
        (EventNotFound, 404),
        (PermissionDenied, 403),
        (ConcurrencyError, 409),
        (StoreUnavailable, 503),
    ],
)
def test_error_status_codes(error, status):
    assert issubclass(error, StarModelError)
    assert error("x").status_code == status
