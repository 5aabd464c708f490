"""Parse TwiML into plain tuples so tests can assert exact verbs, order and attributes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def verbs(body: str | bytes) -> list[tuple[str, dict[str, str], str, list[Any]]]:
    """``<Response>``'s children as (tag, attributes, text, children) tuples, recursively."""
    root = ET.fromstring(body)
    assert root.tag == "Response", root.tag

    def node(el: ET.Element):
        return (el.tag, dict(el.attrib), (el.text or "").strip(), [node(c) for c in el])

    return [node(c) for c in root]


def tags(body: str | bytes) -> list[str]:
    return [v[0] for v in verbs(body)]
