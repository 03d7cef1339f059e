"""Users' own agents for the bring-your-own-agent tests.

``agent`` is built with the real atomic-agents library, the way a user would write it (with a
sync client the runtime replaces). ``make_minimal_agent`` is a stand-in with the same
interface for environments without the library.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


def build_real_agent() -> Any:
    import instructor
    import openai
    from atomic_agents import AgentConfig, AtomicAgent, BaseIOSchema
    from atomic_agents.context import BaseDynamicContextProvider, SystemPromptGenerator

    class TranslateInput(BaseIOSchema):
        """Text to translate."""

        text: str = Field(..., min_length=1, description="The text")
        target: str = Field(..., pattern="^[a-z]{2}$", description="ISO 639-1 language code")

    class TranslateOutput(BaseIOSchema):
        """The translation."""

        translation: str = Field(..., description="The translated text")
        confidence: float = Field(..., ge=0, le=1)

    class Tone(BaseDynamicContextProvider):
        def get_info(self) -> str:
            return "Formal register."

    client = instructor.from_openai(openai.OpenAI(api_key="user-placeholder"))
    return AtomicAgent[TranslateInput, TranslateOutput](
        AgentConfig(
            client=client,
            model="user-model",
            system_prompt_generator=SystemPromptGenerator(
                background=["You translate text."],
                steps=["Translate faithfully."],
                context_providers={"tone": Tone("Tone")},
            ),
        )
    )


try:
    agent = build_real_agent()
except ImportError:  # the test that needs it says so; the loader test below does not
    agent = None


class MinimalIn(BaseModel):
    """Question."""

    question: str


class MinimalOut(BaseModel):
    """Answer."""

    answer: str


class MinimalAgent:
    """The slice of AtomicAgent's interface the runtime relies on."""

    input_schema = MinimalIn
    output_schema = MinimalOut

    def __init__(self) -> None:
        self.client: Any = None
        self.model = "user-model"
        self.history: list[Any] = []
        self.model_api_parameters: dict[str, Any] = {}
        from atomic_runtime.prompt import SystemPrompt

        self.system_prompt_generator = SystemPrompt(["You answer questions."])
        self.providers: dict[str, Any] = {}

    def reset_history(self) -> None:
        self.history = []

    def get_context_provider(self, name: str) -> Any:
        return self.providers[name]

    def register_context_provider(self, name: str, provider: Any) -> None:
        self.providers[name] = provider

    async def run_async(self, data: MinimalIn) -> MinimalOut:
        self.history.append(data)
        assert len(self.history) == 1, "agent state leaked between requests"
        result: MinimalOut = await self.client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": self.system_prompt_generator.generate_prompt()},
                {"role": "user", "content": data.model_dump_json()},
            ],
            response_model=MinimalOut,
            **self.model_api_parameters,
        )
        return result


def make_minimal_agent() -> MinimalAgent:
    return MinimalAgent()


class BuggyAgent(MinimalAgent):
    """A user's agent with a bug: it returns a plain dict instead of its output schema."""

    async def run_async(self, data: MinimalIn) -> Any:
        return {"answer": "not a model"}


def make_buggy_agent() -> BuggyAgent:
    return BuggyAgent()
