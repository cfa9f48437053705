"""The engine: declared stages, their records, and the executors that run them.

    stage          Stage (a declared unit), Graph (order from `needs`), Runner (fingerprint, skip,
                   run, record: the one place that decides whether a stage runs)
    records        one record file per stage; the run manifest derived from them
    tasks          the graph split into driver stages and one task per group; run_task, the one
                   task function every executor calls
    executors/     EXECUTORS registry: local (sequential, default), ray (Ray tasks)

Nothing here knows about speech enhancement: `sepipe.stages` declares that experiment's stages.
"""

from sepipe.engine.stage import Done, Graph, Runner, Stage, StageContext, StageRun

__all__ = ["Done", "Graph", "Runner", "Stage", "StageContext", "StageRun"]
