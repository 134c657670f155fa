"""Slack's Block Kit limits, enforced on every message whatever the data (slack_sdk checks most of them
at to_dict(), but not the block count, duplicate action ids, or what we would rather shorten than fail)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ContextBlock, MarkdownTextObject

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_BUTTON = 75
MAX_ELEMENTS = 25
MAX_FALLBACK = 3000


def clip(text: str, limit: int) -> str:
    """Shorten to `limit` characters, saying so."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def esc(text: str) -> str:
    """Escape user-provided text for mrkdwn (Slack's three control characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class Message:
    text: str  # fallback for notifications and screen readers
    blocks: list[Block] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        """The message as Slack receives it, validated by slack_sdk's models."""
        blocks = fit(self.blocks)
        return {"text": clip(self.text, MAX_FALLBACK), "blocks": [b.to_dict() for b in blocks]}


def fit(blocks: Sequence[Block]) -> list[Block]:
    out = list(blocks)
    seen: set[str] = set()
    for block in out:
        if isinstance(block, ActionsBlock):
            kept = []
            for element in block.elements[:MAX_ELEMENTS]:
                action_id = getattr(element, "action_id", None)
                if action_id in seen:
                    continue
                if action_id:
                    seen.add(action_id)
                kept.append(element)
            block.elements = kept
    out = [b for b in out if not (isinstance(b, ActionsBlock) and not b.elements)]
    if len(out) > MAX_BLOCKS:
        # keep every actions block (the buttons must stay), drop from the middle of the rest
        actions = [b for b in out if isinstance(b, ActionsBlock)]
        room = MAX_BLOCKS - len(actions) - 1
        rest = [b for b in out if not isinstance(b, ActionsBlock)]
        dropped = len(rest) - room
        note = ContextBlock(elements=[MarkdownTextObject(text=f"_{dropped} more block(s) not shown (Slack's limit)_")])
        out = [*rest[:room], note, *actions]
    return out
