"""System prompt composition with the exact layout of Atomic Agents' SystemPromptGenerator.

An agent defined in a CR and the same agent written with the library must send the LLM the
same text, otherwise moving between the two changes behaviour; so the section titles, the
bullet style and the two output instructions the library always appends are reproduced here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .context import ContextProvider

DEFAULT_BACKGROUND = "This is a conversation with a helpful and friendly AI assistant."
ALWAYS_APPENDED_INSTRUCTIONS = (
    "Always respond using the proper JSON schema.",
    "Always use the available additional information and context to enhance the response.",
)


class SystemPrompt:
    def __init__(
        self,
        background: Sequence[str] = (),
        steps: Sequence[str] = (),
        output_instructions: Sequence[str] = (),
        context_providers: Mapping[str, ContextProvider] | None = None,
    ) -> None:
        self.background = list(background) or [DEFAULT_BACKGROUND]
        self.steps = list(steps)
        self.output_instructions = [*output_instructions, *ALWAYS_APPENDED_INSTRUCTIONS]
        self.context_providers = dict(context_providers or {})

    def generate_prompt(self) -> str:
        parts: list[str] = []
        for title, items in (
            ("IDENTITY and PURPOSE", self.background),
            ("INTERNAL ASSISTANT STEPS", self.steps),
            ("OUTPUT INSTRUCTIONS", self.output_instructions),
        ):
            if items:
                parts.append(f"# {title}")
                parts.extend(f"- {item}" for item in items)
                parts.append("")
        if self.context_providers:
            parts.append("# EXTRA INFORMATION AND CONTEXT")
            for provider in self.context_providers.values():
                info = provider.get_info()
                if info:
                    parts.append(f"## {provider.title}")
                    parts.append(info)
                    parts.append("")
        return "\n".join(parts).strip()
