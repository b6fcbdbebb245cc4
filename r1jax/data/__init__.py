"""Host-side data: problem sources, resumable record streams, prompt and SFT batches.

``sources`` (procedural tasks, JSONL/Parquet files) and ``tfds_builder`` (ArrayRecord via
tensorflow-datasets) give random-access problems; ``pipeline`` shards, shuffles, repeats and
resumes them; ``prompts`` and ``sft`` build padded numpy batches. Nothing here imports jax at
module level: it runs on the host, and the trainer moves batches to devices.
"""
