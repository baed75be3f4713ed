"""The plugin passes StarModel's repository contract: one subclass, three fixtures."""

from pathlib import Path

import pytest
from starmodel_jsonfile import JsonFileRepository

from starmodel import Entity, StateStore
from starmodel.testing import RepositoryContract


class JsonNote(Entity):
    model_config = {"store": StateStore.CUSTOM, "backend": "jsonfile", "scope": "id",
                    "namespace": "jsonfile_note"}
    title: str
    count: int = 0
    tags: list[str] = []


class JsonPrivateNote(Entity):
    model_config = {"store": StateStore.CUSTOM, "backend": "jsonfile", "scope": "id",
                    "namespace": "jsonfile_private", "private": True}
    title: str
    count: int = 0
    tags: list[str] = []


class TestJsonFileContract(RepositoryContract):
    supports_ttl = False  # files stay until deleted

    @pytest.fixture
    def repository_factory(self, tmp_path: Path):
        return lambda: JsonFileRepository(tmp_path)

    @pytest.fixture
    def entity_cls(self):
        return JsonNote

    @pytest.fixture
    def private_entity_cls(self):
        return JsonPrivateNote
