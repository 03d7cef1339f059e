"""The pipeline runner: the runtime image in pipeline mode (a PipelineConfig mounted).

It executes one AtomicPipeline by calling its agents' Services, in the order and with the
bindings the operator's type check resolved (see docs/pipelines.md).
"""
