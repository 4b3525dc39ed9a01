"""What a team installs with the plugin stays under permissive licences (docs/licences.md)."""

from __future__ import annotations

import importlib.metadata
import re

import pytest

COPYLEFT = re.compile(r"GENERAL PUBLIC LICENSE|\bA?GPL\b|AGPL-|\bGPL-", re.IGNORECASE)


def licence_text(distribution: str) -> str:
    """Everything a distribution says about its licence: metadata, classifiers, licence files."""
    dist = importlib.metadata.distribution(distribution)
    meta = dist.metadata
    parts = [meta.get("License-Expression") or "", meta.get("License") or ""]
    parts += [c for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    for file in dist.files or []:
        if re.search(r"(LICEN[CS]E|COPYING)", file.name, re.IGNORECASE):
            parts.append((file.read_text() or "")[:2000])
    return "\n".join(parts)


def core_requirements() -> list[str]:
    requires = importlib.metadata.requires("pytest-labelquality") or []
    names = [re.split(r"[\s;<>=!~\[]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r]
    assert "cleanlab" in names  # the metadata was read
    return names


@pytest.mark.parametrize("distribution", core_requirements())
def test_core_dependencies_are_not_copyleft(distribution: str) -> None:
    text = licence_text(distribution)
    assert text.strip(), f"{distribution} states no licence"
    assert not COPYLEFT.search(text), f"{distribution}: {COPYLEFT.search(text)}"


def test_the_check_recognises_the_agpl_of_cleanlab_before_2_8() -> None:
    agpl = "GNU AFFERO GENERAL PUBLIC LICENSE\nVersion 3, 19 November 2007"
    assert COPYLEFT.search(agpl)
    assert COPYLEFT.search("License :: OSI Approved :: GNU General Public License v3 (GPLv3)")
    assert not COPYLEFT.search(licence_text("cleanlab"))  # Apache-2.0 from 2.8


def test_the_plugin_ships_its_mit_licence() -> None:
    text = licence_text("pytest-labelquality")
    assert "MIT" in text
    assert "Permission is hereby granted, free of charge" in text
