"""The serving copy of the champion: BentoML's model store, one entry per promoted version.

Promotion copies the bundle into the store, labelled with its MLflow version; the service
resolves the ``champion`` alias to a version and loads exactly that entry (never "latest"),
importing it from MLflow first if a promotion predates the store.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from riskstrat.common.errors import UserError
from riskstrat.models.bundle import ModelBundle
from riskstrat.models.registry import CHAMPION, MODEL_NAME, RegisteredBundle, load_registered

if TYPE_CHECKING:
    from bentoml import Model
    from mlflow import MlflowClient

VERSION_LABEL = "mlflow_version"
# What MLflow's registry answers for a model that is not registered, or an alias not set.
_NOT_THERE = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class NoChampionError(UserError, LookupError):
    """The registry has no ``champion`` for the model (none promoted yet)."""


def champion_version(tracking_uri: str, name: str = MODEL_NAME) -> str:
    """The registry version the ``champion`` alias points to now; ``NoChampionError`` if it
    points nowhere."""
    from mlflow.exceptions import MlflowException

    try:
        found = _client(tracking_uri).get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code not in _NOT_THERE:
            raise
        raise NoChampionError(
            f"the registry has no {CHAMPION} for {name} ({exc.message.rstrip('.')}): "
            "promote one with riskstrat promote"
        ) from exc
    return str(found.version)


@cache
def _client(tracking_uri: str) -> MlflowClient:
    """One client per URI: making one opens and checks the store, which costs far more than
    the query (a serving worker polls the alias while it answers requests)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _entry(name: str, version: str) -> Model | None:
    """The store entry labelled with registry ``version``, or None."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        entries = bentoml.models.list(name)
    except NotFound:
        return None
    return next((e for e in entries if e.info.labels.get(VERSION_LABEL) == version), None)


def stored(version: str, name: str = MODEL_NAME) -> RegisteredBundle | None:
    """The store's copy of registry ``version``, if there is one."""
    entry = _entry(name, version)
    if entry is None:
        return None
    return RegisteredBundle(name, version, ModelBundle.load(Path(entry.path)))


def store(registered: RegisteredBundle) -> str:
    """Copy a registered bundle into the store (once); return the store tag."""
    import bentoml

    existing = _entry(registered.name, registered.version)
    if existing is not None:
        return str(existing.tag)
    about = registered.bundle.described
    metadata = {"outcome": about.outcome.name, "test": about.test.phrase()}
    with bentoml.models.create(
        registered.name, labels={VERSION_LABEL: registered.version}, metadata=metadata
    ) as entry:
        registered.bundle.save(Path(entry.path))
    return str(entry.tag)


def champion_if_any(tracking_uri: str, name: str) -> RegisteredBundle | None:
    """``load_champion`` of a model a deployment may run without (the potentially avoidable
    admissions' model): None when the registry has no champion of it."""
    try:
        return load_champion(tracking_uri, name)
    except NoChampionError:
        return None


def load_champion(tracking_uri: str, name: str = MODEL_NAME) -> RegisteredBundle:
    """The champion's bundle from the store, importing it from MLflow if missing."""
    version = champion_version(tracking_uri, name)
    found = stored(version, name)
    if found is None:
        store(load_registered(tracking_uri, name=name, version=version))
        found = stored(version, name)
    assert found is not None
    return found
